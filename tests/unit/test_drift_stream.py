"""Streaming drift check: the accumulator gives evaluate_drift's verdict in bounded memory; live performance."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats
from sklearn.model_selection import train_test_split

from functions.domain.card import CategoricalBaseline, DriftBaseline, NumericBaseline, PredictionBaseline, Task
from functions.domain.drift import (
    MISSING_LABEL,
    UNSEEN_LABEL,
    DriftAccumulator,
    DriftPolicy,
    PerformanceAccumulator,
    bin_labels,
    evaluate_drift,
    live_metrics,
)
from functions.domain.training import TrainedModel
from tests.conftest import TRAINABLE, read_dataset

TASKS = ["breast_cancer", "iris", "diabetes"]


def _window(name: str, trained: TrainedModel, n: int, seed: int, scale: dict[str, float] | None = None) -> Any:
    """``n`` rows drawn from the data set (some features scaled) and the model's outputs on them."""
    data = read_dataset(name)
    pick = np.random.default_rng(seed).choice(data.n_rows, size=n, replace=True)
    columns: dict[str, np.ndarray] = {}
    for key, column in data.columns.items():
        values = column[pick]
        columns[key] = values * scale[key] if scale and key in scale else values
    X = np.empty((n, len(trained.schema.names)), dtype=object)
    for j, key in enumerate(trained.schema.names):
        X[:, j] = columns[key]
    if data.categorical.isdisjoint(trained.schema.names):
        X = X.astype(np.float64)
    outputs = trained.model.predict_proba(X) if trained.classes is not None else trained.model.predict(X)
    return columns, outputs, data.target[pick]


def _stream(
    acc: DriftAccumulator, columns: dict[str, np.ndarray], outputs: np.ndarray, request_rows: int = 13
) -> DriftAccumulator:
    """Feed the window as requests of ``request_rows`` rows, as JSON-decoded lists (how capture reads back)."""
    n = len(next(iter(columns.values())))
    for start in range(0, n, request_rows):
        part = slice(start, start + request_rows)
        rows = len(outputs[part])
        acc.add(
            {k: v[part].tolist() for k, v in columns.items()}, outputs[part].tolist(), row_ids=_ids(f"r{start}", rows)
        )
    return acc


def _ids(request_id: str, n: int) -> list[str]:
    """Row ids as predict answers them: ``<request_id>-<i>``."""
    return [f"{request_id}-{i}" for i in range(n)]


# --------------------------------------------------------------------------- equal to the batch evaluation


@pytest.mark.parametrize("name", TASKS)
@pytest.mark.parametrize("shifted", [False, True], ids=["same-distribution", "shifted"])
@pytest.mark.parametrize("chunk_rows", [7, 4096])
def test_accumulator_equals_evaluate_drift(
    trained: dict[str, TrainedModel], name: str, shifted: bool, chunk_rows: int
) -> None:
    model, task = trained[name], TRAINABLE[name].spec.task
    numeric = [f.name for f in model.schema.features if f.kind == "numeric"][:2]
    columns, outputs, _ = _window(name, model, 400, seed=3, scale=dict.fromkeys(numeric, 1.8) if shifted else None)

    streamed = _stream(DriftAccumulator(model.baseline, task, chunk_rows=chunk_rows), columns, outputs).report()
    batch = evaluate_drift(model.baseline, columns, outputs, task, 400)

    assert streamed == batch
    assert (streamed.verdict == "DRIFT") is shifted
    if shifted:
        assert set(numeric) <= set(streamed.drifted)


def test_accumulator_equals_evaluate_drift_with_missing_values(trained: dict[str, TrainedModel]) -> None:
    model = trained["breast_cancer"]
    columns, outputs, _ = _window("breast_cancer", model, 300, seed=5)
    name = model.schema.names[0]
    with_missing = columns[name].astype(object)
    with_missing[::3] = None
    columns[name] = with_missing

    streamed = _stream(DriftAccumulator(model.baseline, "binary_classification"), columns, outputs).report()
    batch = evaluate_drift(
        model.baseline,
        {**columns, name: with_missing.astype(np.float64)},
        outputs,
        "binary_classification",
        300,
    )

    assert streamed == batch
    feature = next(f for f in streamed.features if f.name == name)
    assert feature.n_current == 200
    assert name in streamed.drifted  # a third of the values suddenly missing is drift


# --------------------------------------------------------------------------- bounded memory


def _one_feature(edges: list[float]) -> DriftBaseline:
    return DriftBaseline(
        numeric={
            "x": NumericBaseline(edges=edges, proportions=[1 / (len(edges) - 1)] * (len(edges) - 1), mean=0, std=1)
        },
        categorical={},
        reference_sample={"x": list(np.linspace(0.0, 1.0, 50))},
        reference_size=50,
        prediction=PredictionBaseline(edges=[0.0, 0.5, 1.0], proportions=[0.5, 0.5]),
    )


def test_sample_stays_bounded_and_uniform() -> None:
    acc = DriftAccumulator(_one_feature([0.0, 0.25, 0.5, 0.75, 1.0]), "regression", sample_size=500)
    n = 200_000
    positions = np.arange(n, dtype=np.float64)
    for start in range(0, n, 1000):
        acc.add({"x": positions[start : start + 1000] / n}, row_ids=_ids(f"req{start}", 1000))

    sample = acc.sample("x") * n

    assert acc.n_rows == n
    assert sample.size == 500
    assert np.unique(sample).size == 500  # a sample of distinct rows, not repeats
    # every position of the stream equally likely: the kept positions look uniform on [0, n)
    assert stats.kstest(sample / n, "uniform").pvalue > 0.001
    assert acc.report(DriftPolicy(min_rows=1)).features[0].n_current == n


def test_sample_holds_every_row_while_small() -> None:
    acc = DriftAccumulator(_one_feature([0.0, 0.5, 1.0]), "regression", sample_size=100, chunk_rows=3)
    values = np.linspace(0.0, 1.0, 100)
    for start in range(0, 100, 7):
        part = values[start : start + 7]
        acc.add({"x": part.tolist()}, row_ids=_ids(f"req{start}", part.size))

    np.testing.assert_array_equal(np.sort(acc.sample("x")), values)  # in the order of the row-id hashes


def test_counts_do_not_depend_on_request_size(trained: dict[str, TrainedModel]) -> None:
    model = trained["iris"]
    columns, outputs, _ = _window("iris", model, 600, seed=9)
    one_by_one = _stream(DriftAccumulator(model.baseline, "multiclass_classification"), columns, outputs, 1)
    all_at_once = _stream(DriftAccumulator(model.baseline, "multiclass_classification"), columns, outputs, 600)

    assert one_by_one.report() == all_at_once.report()
    assert one_by_one.distributions() == all_at_once.distributions()


# --------------------------------------------------------------------------- categories, sparse windows, charts


def _categorical_baseline() -> DriftBaseline:
    return DriftBaseline(
        numeric={},
        categorical={"colour": CategoricalBaseline(frequencies={"red": 0.5, "blue": 0.5})},
        reference_sample={"colour": ["red", "blue"]},
        reference_size=2,
        prediction=PredictionBaseline(class_frequencies={"a": 0.5, "b": 0.5}),
    )


def test_unseen_categories_are_counted_not_fatal() -> None:
    acc = DriftAccumulator(_categorical_baseline(), "multiclass_classification", chunk_rows=10)
    for k in range(100):
        acc.add({"colour": ["red", "blue", "green", "mauve"]}, ["a", "b", "a", "b"], row_ids=_ids(f"r{k}", 4))

    report = acc.report()
    feature = report.features[0]

    assert feature.unseen == ["green", "mauve"]
    assert feature.n_current == 400
    assert report.drifted == ["colour"]
    chart = acc.distributions()[0]
    assert chart.labels == ["red", "blue", UNSEEN_LABEL]
    assert chart.current == pytest.approx([0.25, 0.25, 0.5])
    assert chart.reference == pytest.approx([0.5, 0.5, 0.0])


def test_below_min_rows_is_insufficient_data_not_healthy(trained: dict[str, TrainedModel]) -> None:
    model = trained["breast_cancer"]
    columns, outputs, _ = _window("breast_cancer", model, 199, seed=1, scale={model.schema.names[0]: 3.0})

    report = _stream(DriftAccumulator(model.baseline, "binary_classification"), columns, outputs).report()

    assert report.verdict == "INSUFFICIENT_DATA"
    assert report.n_rows == 199
    assert report.drifted == [] and report.features == []


def test_rows_without_a_baseline_feature_are_refused() -> None:
    acc = DriftAccumulator(_categorical_baseline(), "multiclass_classification")

    with pytest.raises(ValueError, match="colour"):
        acc.add({"shade": ["red"]}, ["a"], row_ids=["r-0"])


def test_numeric_distribution_has_bin_labels_and_a_missing_cell() -> None:
    acc = DriftAccumulator(_one_feature([0.0, 0.25, 0.5, 0.75, 1.0]), "regression")
    acc.add({"x": [0.1, 0.3, None, 0.9]}, [0.2, 0.2, 0.7, 0.7], row_ids=_ids("r", 4))

    numeric, output = acc.distributions()

    assert numeric.labels == ["≤ 0.25", "0.25 – 0.5", "0.5 – 0.75", "> 0.75", MISSING_LABEL]
    assert numeric.current == pytest.approx([0.25, 0.25, 0.0, 0.25, 0.25])
    assert numeric.reference == pytest.approx([0.25] * 4 + [0.0])
    assert output.kind == "prediction"
    assert output.current == pytest.approx([0.5, 0.5])
    assert bin_labels([3.0, 3.0]) == ["all"]


# --------------------------------------------------------------------------- live performance


@pytest.mark.parametrize("name", TASKS)
def test_live_metrics_on_the_validation_rows_equal_the_card_metrics(
    trained: dict[str, TrainedModel], name: str
) -> None:
    spec, model = TRAINABLE[name].spec, trained[name]
    data = read_dataset(name)
    classification = model.classes is not None
    _, valid = train_test_split(
        np.arange(data.n_rows),
        test_size=spec.validation_fraction,
        random_state=spec.random_state,
        stratify=data.target if classification else None,
    )
    rows = data.take(valid)
    X = rows.matrix(model.schema.names)
    acc = PerformanceAccumulator(spec.task, model.classes, chunk_rows=17)
    if classification:
        proba = model.model.predict_proba(X)
        predicted = np.asarray(model.classes, dtype=object)[proba.argmax(axis=1)]
        acc.add(rows.target.tolist(), predicted.tolist(), proba.tolist())
    else:
        acc.add(rows.target.tolist(), model.model.predict(X).tolist())

    result = acc.result(model.metrics, model.primary_metric, tolerance=0.05, min_rows=10)

    assert acc.metrics() == pytest.approx(model.metrics, rel=1e-9)
    assert result.status == "OK"
    assert result.relative_drop == pytest.approx(0.0, abs=1e-9)


def test_binary_flipped_labels_degrade_auc() -> None:
    proba = [[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]] * 50
    predictions = [0, 0, 1, 1] * 50
    acc = PerformanceAccumulator("binary_classification", [0, 1])
    acc.add([1, 1, 0, 0] * 50, predictions, proba)

    result = acc.result({"roc_auc": 0.99, "accuracy": 0.95}, "roc_auc", tolerance=0.05, min_rows=200)

    assert result.status == "DEGRADED" and result.degraded
    assert result.metric == "roc_auc"
    assert result.live_value == pytest.approx(0.0)
    assert result.relative_drop == pytest.approx(1.0)
    assert result.metrics["accuracy"] == pytest.approx(0.0)


def test_binary_auc_with_one_class_falls_back_to_accuracy() -> None:
    acc = PerformanceAccumulator("binary_classification", [0, 1])
    # 200 rows whose outcome is always 1; 180 predicted 1: accuracy 0.9 against 0.96 is a 6.25% drop
    acc.add([1] * 200, [1] * 180 + [0] * 20, [[0.2, 0.8]] * 180 + [[0.7, 0.3]] * 20)

    result = acc.result({"roc_auc": 0.99, "accuracy": 0.96}, "roc_auc", tolerance=0.05, min_rows=200)

    assert "roc_auc" not in result.metrics
    assert result.metric == "accuracy"
    assert "roc_auc cannot be measured" in result.note
    assert result.live_value == pytest.approx(0.9)
    assert result.relative_drop == pytest.approx(0.06 / 0.96)
    assert result.status == "DEGRADED"


def test_multiclass_f1_macro_pinned() -> None:
    # per class: a P=1 R=1/2, b P=1/2 R=1, c P=R=1 -> F1 2/3, 2/3, 1; macro 7/9
    acc = PerformanceAccumulator("multiclass_classification", ["a", "b", "c"])
    for _ in range(100):
        acc.add(["a", "a", "b", "c"], ["a", "b", "b", "c"])

    result = acc.result({"f1_macro": 0.9}, "f1_macro", tolerance=0.05, min_rows=200)

    assert result.live_value == pytest.approx(7 / 9)
    assert result.relative_drop == pytest.approx((0.9 - 7 / 9) / 0.9)
    assert result.status == "DEGRADED"
    assert result.metrics["accuracy"] == pytest.approx(0.75)


def test_regression_rmse_is_lower_is_better() -> None:
    acc = PerformanceAccumulator("regression", None)
    acc.add([0.0, 0.0, 0.0, 0.0] * 60, [1.0, -1.0, 3.0, -3.0] * 60)  # errors 1, 1, 3, 3: MAE 2, RMSE sqrt(5)

    worse = acc.result({"rmse": 2.0}, "rmse", tolerance=0.05, min_rows=200)
    better = acc.result({"rmse": 3.0}, "rmse", tolerance=0.05, min_rows=200)

    assert worse.metrics["mae"] == pytest.approx(2.0)
    assert worse.live_value == pytest.approx(math.sqrt(5))
    assert worse.relative_drop == pytest.approx((math.sqrt(5) - 2.0) / 2.0)
    assert worse.status == "DEGRADED"
    assert better.status == "OK" and better.relative_drop < 0


def test_few_labels_are_insufficient_and_unknown_labels_are_counted() -> None:
    acc = PerformanceAccumulator("binary_classification", [0, 1])
    acc.add([0, 1, 7], [0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])

    result = acc.result({"roc_auc": 0.99}, "roc_auc", tolerance=0.05, min_rows=200)

    assert result.status == "INSUFFICIENT_DATA" and not result.degraded
    assert result.labeled_rows == 2
    assert acc.unknown_labels == 1
    assert "1 outcome(s) named no known class" in result.note


@pytest.mark.parametrize(
    ("task", "n_classes", "expected"),
    [
        ("binary_classification", 2, {"accuracy", "f1_macro", "f1", "log_loss", "roc_auc"}),
        ("multiclass_classification", 3, {"accuracy", "f1_macro", "log_loss", "roc_auc"}),
        ("regression", 0, {"mae", "rmse", "r2"}),
    ],
)
def test_live_metrics_names(task: Task, n_classes: int, expected: set[str]) -> None:
    y = np.array([0, 1, 2, 0, 1, 2]) % max(n_classes, 1) if n_classes else np.arange(6.0)
    proba = np.full((6, n_classes), 1.0 / n_classes) if n_classes else None

    assert set(live_metrics(task, n_classes, y, y, proba)) == expected
