"""Running a model on a validated batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.domain.card import ModelCard
from functions.domain.schema import Batch
from functions.errors import FieldError, MlopsError, ValidationError


class ModelOutputError(MlopsError):
    """The model produced non-finite outputs: a fault of the model, never of the client."""

    code = "model_output_error"


@dataclass
class Outputs:
    """Predictions (labels or values) and, for classifiers, class probabilities."""

    predictions: np.ndarray
    probabilities: np.ndarray | None


def infer(model: Any, batch: Batch, card: ModelCard, classes: np.ndarray | None) -> Outputs:
    """Predict ``batch``; classifiers predict the most probable class.

    Args:
        model: the fitted pipeline.
        batch: validated inputs.
        card: the model's card (decides classifier vs regressor).
        classes: the class labels in model order (classifiers only).

    Raises:
        ValidationError: the model failed on values far outside the training range (the client's input).
        ModelOutputError: the model failed on ordinary input (a fault of ours, a 5xx).
    """
    try:
        outputs = _run(model, batch, card, classes)
    except (ValueError, FloatingPointError, OverflowError, ModelOutputError) as exc:
        if batch.out_of_range:
            raise ValidationError(
                "the model cannot predict values this far outside its training range",
                [
                    FieldError(o.field, f"{o.value:g} is far outside the training range; the model fails on it", o.row)
                    for o in batch.out_of_range[:20]
                ],
            ) from exc
        if isinstance(exc, ModelOutputError):
            raise
        raise ModelOutputError(f"model failed: {type(exc).__name__}") from exc
    return outputs


def _run(model: Any, batch: Batch, card: ModelCard, classes: np.ndarray | None) -> Outputs:
    with np.errstate(over="ignore", invalid="ignore"):
        if card.is_classifier:
            assert classes is not None
            proba = model.predict_proba(batch.matrix)
            if not np.isfinite(proba).all():
                raise ModelOutputError("model returned non-finite probabilities")
            return Outputs(predictions=classes[proba.argmax(axis=1)], probabilities=proba)
        values = np.asarray(model.predict(batch.matrix), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ModelOutputError("model returned non-finite predictions")
    return Outputs(predictions=values, probabilities=None)
