"""Running a model on a validated batch: outputs are checked, a broken model is our fault (5xx)."""

from __future__ import annotations

import numpy as np
import pytest

from functions.domain.inference import ModelOutputError, infer
from functions.domain.schema import Batch
from functions.errors import http_status_for


class _FixedOutputModel:
    """A stand-in for a loaded serving graph (``ServingGraph.run``) that answers fixed outputs."""

    def __init__(self, proba: list[list[float]] | None = None, values: list[float] | None = None) -> None:
        self._proba, self._values = proba, values

    def run(self, matrix: np.ndarray | None, columns: dict[str, np.ndarray]) -> np.ndarray:
        return np.array(self._proba if self._proba is not None else self._values, dtype=np.float64)


def batch(n: int) -> Batch:
    return Batch(matrix=np.zeros((n, 1)), columns={"x": np.zeros(n)}, n_rows=n)


def test_classifier_predicts_the_most_probable_class(minimal_card):
    card = minimal_card(task="multiclass_classification", classes=["a", "b", "c"])
    model = _FixedOutputModel(proba=[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])

    out = infer(model, batch(2), card, np.array(card.classes, dtype=object))

    assert out.predictions.tolist() == ["b", "a"]
    assert out.probabilities.tolist() == [[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]]


def test_regressor_returns_values_and_no_probabilities(minimal_card):
    out = infer(_FixedOutputModel(values=[1.5, 2]), batch(2), minimal_card(task="regression", classes=None), None)

    assert out.predictions.dtype == np.float64
    assert out.predictions.tolist() == [1.5, 2.0]
    assert out.probabilities is None


@pytest.mark.parametrize(
    ("task", "model"),
    [
        ("binary_classification", _FixedOutputModel(proba=[[np.nan, np.nan]])),
        ("binary_classification", _FixedOutputModel(proba=[[np.inf, 0.0]])),
        ("regression", _FixedOutputModel(values=[np.inf])),
        ("regression", _FixedOutputModel(values=[np.nan])),
    ],
)
def test_non_finite_outputs_are_a_server_fault(minimal_card, task: str, model: _FixedOutputModel):
    card = minimal_card(task=task, classes=[0, 1] if task != "regression" else None)

    with pytest.raises(ModelOutputError) as exc:
        infer(model, batch(1), card, np.array([0, 1], dtype=object))

    assert http_status_for(exc.value) == 500
