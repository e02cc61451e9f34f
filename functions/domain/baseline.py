"""The drift baseline recorded in a model card at training time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from functions.domain.card import (
    CategoricalBaseline,
    DriftBaseline,
    NumericBaseline,
    PredictionBaseline,
    Task,
)
from functions.domain.schema import FeatureSchema

if TYPE_CHECKING:
    from functions.domain.dataset import Dataset

DEFAULT_BINS = 10


def quantile_bins(values: np.ndarray, bins: int = DEFAULT_BINS) -> tuple[list[float], list[float]]:
    """Quantile bin edges of ``values`` and the share of values in each bin.

    Edges are de-duplicated, so a feature with few distinct values gets fewer bins. Values are
    assigned with the inner edges only, so live values beyond the training range fall in the
    first or last bin.

    Returns:
        ``(edges, proportions)`` with ``len(edges) == len(proportions) + 1``.
    """
    values = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size == 1:
        return [float(edges[0]), float(edges[0])], [1.0]
    counts = bin_counts(values, edges)
    return edges.tolist(), (counts / values.size).tolist()


def bin_counts(values: np.ndarray, edges: np.ndarray | list[float]) -> np.ndarray:
    """Count ``values`` per bin of ``edges`` (inner edges decide; bins are right-closed)."""
    edges = np.asarray(edges, dtype=np.float64)
    inner = edges[1:-1]
    index = np.searchsorted(inner, values, side="left")
    return np.bincount(index, minlength=edges.size - 1).astype(np.float64)


def _counts(values: np.ndarray) -> dict[str, int]:
    labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(k): int(c) for k, c in zip(labels, counts, strict=True)}


def _frequencies(values: np.ndarray) -> dict[str, float]:
    return {k: float(c) / float(values.size) for k, c in _counts(values).items()}


def _plain(values: np.ndarray) -> list[Any]:
    return [v.item() if hasattr(v, "item") else v for v in values.tolist()]


def compute_baseline(
    train_set: Dataset,
    schema: FeatureSchema,
    *,
    valid_predictions: np.ndarray,
    classes: list[Any] | None,
    task: Task,
    sample_size: int,
    seed: int,
) -> DriftBaseline:
    """Summarise the training data and validation predictions for later drift checks.

    Args:
        train_set: the rows the model was fitted on.
        schema: the feature schema (decides numeric vs categorical).
        valid_predictions: ``predict_proba`` output for classifiers, ``predict`` for regression.
        classes: class labels in model order (classifiers only).
        task: the model's task.
        sample_size: upper bound on the reference sample's rows.
        seed: seed of the reference sample draw.
    """
    numeric: dict[str, NumericBaseline] = {}
    categorical: dict[str, CategoricalBaseline] = {}
    for spec in schema.features:
        col = train_set.columns[spec.name]
        if spec.kind == "numeric":
            present = col[~np.isnan(col)]  # missing values are their own cell (``missing``), not in the bins
            edges, props = quantile_bins(present)
            numeric[spec.name] = NumericBaseline(
                edges=edges,
                proportions=props,
                mean=float(present.mean()),
                std=float(present.std()),
                missing=float(1.0 - present.size / col.size),
            )
        else:
            categorical[spec.name] = CategoricalBaseline(frequencies=_frequencies(col), counts=_counts(col))
    rng = np.random.default_rng(seed)
    n = train_set.n_rows
    pick = np.sort(rng.choice(n, size=min(sample_size, n), replace=False))
    sample = {spec.name: _plain(train_set.columns[spec.name][pick]) for spec in schema.features}
    return DriftBaseline(
        numeric=numeric,
        categorical=categorical,
        reference_sample=sample,
        reference_size=int(pick.size),
        prediction=prediction_baseline(valid_predictions, classes, task),
    )


def prediction_baseline(outputs: np.ndarray, classes: list[Any] | None, task: Task) -> PredictionBaseline:
    """Distribution of model outputs: positive-class probability bins and label frequencies, or value bins."""
    if task == "regression":
        edges, props = quantile_bins(outputs)
        return PredictionBaseline(edges=edges, proportions=props)
    assert classes is not None
    labels = np.asarray(classes, dtype=object)[np.argmax(outputs, axis=1)]
    freqs = _frequencies(labels)
    result = PredictionBaseline(class_frequencies={str(c): freqs.get(str(c), 0.0) for c in classes})
    if task == "binary_classification":
        edges, props = quantile_bins(outputs[:, 1])
        result.edges, result.proportions = edges, props
    return result
