"""The drift baseline, pinned on small fixed samples whose numbers were worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from functions.domain.baseline import bin_counts, compute_baseline, prediction_baseline, quantile_bins
from functions.domain.dataset import Dataset
from functions.domain.schema import FeatureSchema, FeatureSpec

# values, bins, edges, proportions. Quantiles interpolate linearly between order statistics
# (numpy's default), edges are de-duplicated, bins are right-closed on the inner edges.
QUANTILE_BINS = [
    pytest.param([1, 2, 3, 4], 2, [1.0, 2.5, 4.0], [0.5, 0.5], id="four-values-two-bins"),
    pytest.param(list(range(1, 11)), 4, [1.0, 3.25, 5.5, 7.75, 10.0], [0.3, 0.2, 0.2, 0.3], id="one-to-ten"),
    pytest.param([0, 0, 0, 1], 4, [0.0, 0.25, 1.0], [0.75, 0.25], id="ties-merge-edges"),
    pytest.param([5, 5, 5], 10, [5.0, 5.0], [1.0], id="constant"),
    pytest.param([4, 1, 3, 2], 2, [1.0, 2.5, 4.0], [0.5, 0.5], id="order-does-not-matter"),
    pytest.param(
        [1, 2, 3, 4],
        10,
        [1.0, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.1, 3.4, 3.7, 4.0],
        [0.25, 0.0, 0.0, 0.25, 0.0, 0.0, 0.25, 0.0, 0.0, 0.25],
        id="more-bins-than-values",
    ),
]


@pytest.mark.parametrize(("values", "bins", "edges", "proportions"), QUANTILE_BINS)
def test_quantile_bins(values: list[float], bins: int, edges: list[float], proportions: list[float]):
    got_edges, got_props = quantile_bins(np.array(values), bins)

    assert got_edges == pytest.approx(edges)
    assert got_props == pytest.approx(proportions)


BIN_COUNTS = [
    # edges [0, 1, 2, 3]: inner edges 1 and 2 decide; a value on an edge belongs to the bin on its left
    pytest.param([0.5, 1.0, 1.5, 2.0, 2.5], [0, 1, 2, 3], [2, 2, 1], id="edges-close-on-the-right"),
    pytest.param([-5.0, 10.0, 3.0, 0.0], [0, 1, 2, 3], [2, 0, 2], id="beyond-range-goes-to-outer-bins"),
    pytest.param([], [0, 1, 2, 3], [0, 0, 0], id="empty"),
    pytest.param([7.0, 8.0], [5, 5], [2], id="single-bin"),
]


@pytest.mark.parametrize(("values", "edges", "counts"), BIN_COUNTS)
def test_bin_counts(values: list[float], edges: list[float], counts: list[float]):
    got = bin_counts(np.array(values, dtype=np.float64), edges)

    assert got.tolist() == counts
    assert got.dtype == np.float64


def test_binary_prediction_baseline_bins_the_positive_class():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])

    baseline = prediction_baseline(proba, [0, 1], "binary_classification")

    assert baseline.class_frequencies == {"0": 0.5, "1": 0.5}
    # positive-class probabilities 0.1, 0.4, 0.7, 0.8: deciles at positions 0, 0.3, ..., 3.0
    assert baseline.edges == pytest.approx([0.1, 0.19, 0.28, 0.37, 0.46, 0.55, 0.64, 0.71, 0.74, 0.77, 0.8])
    assert baseline.proportions == pytest.approx([0.25, 0, 0, 0.25, 0, 0, 0.25, 0, 0, 0.25])


def test_multiclass_prediction_baseline_counts_labels_including_unpredicted_classes():
    proba = np.array([[0.8, 0.1, 0.1], [0.1, 0.2, 0.7], [0.2, 0.2, 0.6], [0.3, 0.6, 0.1]])

    baseline = prediction_baseline(proba, ["a", "b", "c"], "multiclass_classification")
    only_a = prediction_baseline(proba[:1], ["a", "b", "c"], "multiclass_classification")

    assert baseline.class_frequencies == {"a": 0.25, "b": 0.25, "c": 0.5}
    assert baseline.edges is None and baseline.proportions is None
    assert only_a.class_frequencies == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_regression_prediction_baseline_bins_the_values():
    baseline = prediction_baseline(np.array([4.0, 1.0, 3.0, 2.0]), None, "regression")

    assert baseline.edges == pytest.approx([1.0, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.1, 3.4, 3.7, 4.0])
    assert baseline.proportions == pytest.approx([0.25, 0, 0, 0.25, 0, 0, 0.25, 0, 0, 0.25])
    assert baseline.class_frequencies is None


def toy_dataset() -> tuple[Dataset, FeatureSchema]:
    dataset = Dataset(
        columns={"x": np.array([1.0, 2.0, 3.0, 4.0]), "c": np.array(["a", "b", "a", "a"], dtype=object)},
        target_name="y",
        target=np.array([0, 1, 0, 1]),
        categorical=frozenset({"c"}),
    )
    schema = FeatureSchema(
        features=(
            FeatureSpec(name="x", kind="numeric", minimum=1.0, maximum=4.0),
            FeatureSpec(name="c", kind="categorical", categories=("a", "b")),
        )
    )
    return dataset, schema


def test_compute_baseline_on_a_tiny_table():
    dataset, schema = toy_dataset()
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])

    baseline = compute_baseline(
        dataset, schema, valid_predictions=proba, classes=[0, 1], task="binary_classification", sample_size=10, seed=1
    )

    x = baseline.numeric["x"]
    assert x.mean == pytest.approx(2.5)
    assert x.std == pytest.approx(1.118033988749895)  # population std of 1..4: sqrt(1.25)
    assert x.edges == pytest.approx([1.0, 1.3, 1.6, 1.9, 2.2, 2.5, 2.8, 3.1, 3.4, 3.7, 4.0])
    assert baseline.categorical["c"].frequencies == {"a": 0.75, "b": 0.25}
    assert baseline.reference_size == 4
    assert baseline.reference_sample == {"x": [1.0, 2.0, 3.0, 4.0], "c": ["a", "b", "a", "a"]}
    assert baseline.prediction.class_frequencies == {"0": 0.5, "1": 0.5}


def test_reference_sample_is_bounded_and_seeded():
    dataset, schema = toy_dataset()
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])

    first = compute_baseline(
        dataset, schema, valid_predictions=proba, classes=[0, 1], task="binary_classification", sample_size=2, seed=7
    )
    again = compute_baseline(
        dataset, schema, valid_predictions=proba, classes=[0, 1], task="binary_classification", sample_size=2, seed=7
    )

    assert first.reference_size == 2
    assert first.reference_sample == again.reference_sample
    xs = first.reference_sample["x"]
    assert xs == sorted(xs) and set(xs) <= {1.0, 2.0, 3.0, 4.0}
    for x, c in zip(xs, first.reference_sample["c"], strict=True):
        assert c == ["a", "b", "a", "a"][int(x) - 1]  # rows stay whole
