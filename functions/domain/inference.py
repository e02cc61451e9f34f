"""Running a model on a validated batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from functions.domain.card import ModelCard
from functions.domain.schema import Batch
from functions.errors import MlopsError


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
    """
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
