"""Training on the real data sets in ``data/``: metrics within sane bounds, schemas and baselines recorded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from functions.domain.card import EstimatorSpec
from functions.domain.dataset import infer_task, parse_csv
from functions.domain.training import TrainingSpec, build_pipeline, feature_schema, train
from functions.errors import TrainingError
from tests.conftest import TRAINABLE, read_dataset

# (data set, primary metric, {metric: (lowest sane value, highest sane value)})
METRIC_BOUNDS = [
    pytest.param(
        "breast_cancer",
        "roc_auc",
        {"roc_auc": (0.98, 1.0), "accuracy": (0.94, 1.0), "log_loss": (0.0, 0.2)},
        id="binary",
    ),
    pytest.param(
        "iris",
        "f1_macro",
        {"f1_macro": (0.85, 1.0), "accuracy": (0.85, 1.0), "roc_auc": (0.95, 1.0)},
        id="multiclass",
    ),
    pytest.param(
        "diabetes",
        "rmse",
        {"rmse": (40.0, 65.0), "r2": (0.35, 0.7), "mae": (30.0, 55.0)},
        id="regression",
    ),
]


@pytest.mark.parametrize(("name", "primary", "bounds"), METRIC_BOUNDS)
def test_validation_metrics_are_sane(trained, name: str, primary: str, bounds: dict[str, tuple[float, float]]):
    model = trained[name]

    assert model.primary_metric == primary
    for metric, (lo, hi) in bounds.items():
        assert lo <= model.metrics[metric] <= hi, metric


@pytest.mark.parametrize(
    ("name", "split", "n_features", "classes"),
    [
        ("breast_cancer", (426, 143), 30, [0, 1]),
        ("iris", (112, 38), 4, ["setosa", "versicolor", "virginica"]),
        ("diabetes", (331, 111), 10, None),
    ],
)
def test_split_schema_and_classes(trained, name: str, split: tuple[int, int], n_features: int, classes: Any):
    model = trained[name]

    assert (model.train_rows, model.validation_rows) == split
    assert len(model.schema.features) == n_features
    assert model.classes == classes
    assert TRAINABLE[name].spec.target not in model.schema.names


def test_schema_ranges_and_categories_come_from_the_data():
    dataset = read_dataset("diabetes")
    schema = feature_schema(dataset)

    sex = schema.features[schema.names.index("sex")]
    bmi = schema.features[schema.names.index("bmi")]
    assert sex.kind == "categorical" and sex.categories == ("sex_1", "sex_2")
    assert (bmi.minimum, bmi.maximum) == (dataset.columns["bmi"].min(), dataset.columns["bmi"].max())
    assert schema.names == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


@pytest.mark.parametrize("name", ["breast_cancer", "iris", "diabetes"])
def test_baseline_covers_every_feature_and_the_predictions(trained, name: str):
    model = trained[name]
    baseline = model.baseline

    assert set(baseline.numeric) | set(baseline.categorical) == set(model.schema.names)
    for stats in baseline.numeric.values():
        assert len(stats.edges) == len(stats.proportions) + 1
        assert sum(stats.proportions) == pytest.approx(1.0)
    for stats in baseline.categorical.values():
        assert sum(stats.frequencies.values()) == pytest.approx(1.0)
    assert baseline.reference_size == min(1000, model.train_rows)
    assert {len(v) for v in baseline.reference_sample.values()} == {baseline.reference_size}
    prediction = baseline.prediction
    if model.classes is not None:
        assert list(prediction.class_frequencies or {}) == [str(c) for c in model.classes]
        assert sum((prediction.class_frequencies or {}).values()) == pytest.approx(1.0)
    if name != "iris":
        assert sum(prediction.proportions or []) == pytest.approx(1.0)


def test_training_is_deterministic(trained):
    again = train(read_dataset("breast_cancer"), TRAINABLE["breast_cancer"].spec)

    assert again.metrics == trained["breast_cancer"].metrics
    assert again.baseline == trained["breast_cancer"].baseline


def test_categorical_pipeline_accepts_the_category_strings(trained):
    model = trained["diabetes"].model
    row = np.array([[59.0, "sex_2", 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]], dtype=object)

    prediction = model.predict(row)

    assert 25.0 <= float(prediction[0]) <= 346.0  # the range of progression in data/diabetes.csv


def spec(task: str, target: str, kind: str = "logistic_regression", **params: Any) -> TrainingSpec:
    return TrainingSpec(task=task, target=target, estimator=EstimatorSpec(kind=kind, params=params))


TRAINING_ERRORS = [
    pytest.param("iris", spec("binary_classification", "species"), "has 3 classes", id="binary-on-3-classes"),
    pytest.param("breast_cancer", spec("multiclass_classification", "target"), "has 2 classes", id="multi-on-2"),
    pytest.param("breast_cancer", spec("binary_classification", "target", "ridge"), "cannot be used", id="ridge-clf"),
    pytest.param("diabetes", spec("regression", "progression", "logistic_regression"), "cannot be used", id="lr-reg"),
    pytest.param(
        "breast_cancer", spec("binary_classification", "target", nonsense=1), "bad parameters", id="bad-params"
    ),
]


@pytest.mark.parametrize(("name", "training", "message"), TRAINING_ERRORS)
def test_training_errors(name: str, training: TrainingSpec, message: str):
    if name == "diabetes":
        training = training.model_copy(update={"categorical": ["sex"]})
    with pytest.raises(TrainingError, match=message):
        train(read_dataset(name), training)


def test_build_pipeline_scales_only_linear_models(trained):
    schema = trained["breast_cancer"].schema
    forest = build_pipeline(schema, "binary_classification", EstimatorSpec(kind="random_forest"))
    linear = build_pipeline(schema, "binary_classification", EstimatorSpec(kind="logistic_regression"))

    assert forest.named_steps["preprocess"].transformers[0][1] == "passthrough"
    assert type(linear.named_steps["preprocess"].transformers[0][1]).__name__ == "StandardScaler"


CSV_ERRORS = [
    pytest.param("", "y", set(), False, "dataset is empty", id="empty"),
    pytest.param("a,y\n", "y", set(), False, "header but no rows", id="header-only"),
    pytest.param("a,b\n1,2\n", "y", set(), False, "target column 'y' not in dataset", id="no-target"),
    pytest.param("a,y\n1,0\n", "y", {"c"}, False, r"categorical columns \['c'\] not in", id="unknown-categorical"),
    pytest.param("a,y\n1,0\n2\n", "y", set(), False, "line 3: expected 2 values, got 1", id="ragged"),
    pytest.param(
        "a,y\n1,0\nx,1\n",
        "y",
        set(),
        False,
        "column 'a' is not numeric: line 3 holds 'x'. If the column holds categories, pass --categorical a",
        id="text-in-numeric",
    ),
    pytest.param("a,y\n1,0\ninf,1\n", "y", set(), False, "column 'a' has a non-finite value on line 3", id="inf"),
    pytest.param("a,b,y\n1,,0\n2,NA,1\n", "y", set(), False, "column 'b' has no values at all", id="all-missing"),
    pytest.param("a,y\n1,0.5\n2,high\n", "y", set(), True, "target column 'y' must be numeric", id="text-target"),
]


@pytest.mark.parametrize(("text", "target", "categorical", "regression", "message"), CSV_ERRORS)
def test_parse_csv_errors(text: str, target: str, categorical: set[str], regression: bool, message: str):
    with pytest.raises(TrainingError, match=message):
        parse_csv(text, target, categorical, regression)


def test_parse_csv_types_columns_and_targets():
    dataset = parse_csv(" a , c ,y\n1.5,x,0\n\n2,z,1\n", "y", {"c"}, regression=False)
    labels = parse_csv("a,y\n1,cat\n2,dog\n", "y", set(), regression=False)

    assert dataset.feature_names == ["a", "c"]
    assert dataset.columns["a"].tolist() == [1.5, 2.0]
    assert dataset.columns["c"].tolist() == ["x", "z"]
    assert dataset.target.dtype == np.int64 and dataset.target.tolist() == [0, 1]
    assert labels.target.tolist() == ["cat", "dog"]
    assert dataset.matrix(["c", "a"]).tolist() == [["x", 1.5], ["z", 2.0]]
    assert dataset.take(np.array([1])).columns["c"].tolist() == ["z"]


@pytest.mark.parametrize(
    ("values", "task"),
    [
        (["yes", "no", "yes"], "binary_classification"),
        (["True", "False"], "binary_classification"),
        (["a", "b", "c", "a"], "multiclass_classification"),
        (["0", "1", "1", "0"], "binary_classification"),
        ([str(i % 20) for i in range(100)], "multiclass_classification"),
        ([str(i % 21) for i in range(100)], "regression"),
        (["1.5", "2", "3"], "regression"),
        (["1.0", "2.0"], "regression"),
    ],
)
def test_the_task_is_inferred_from_the_target(values: list[str], task: str) -> None:
    inferred, reason = infer_task(values, "y")
    assert inferred == task
    assert reason.startswith("target 'y' holds")


def test_a_target_with_one_value_has_nothing_to_learn() -> None:
    with pytest.raises(TrainingError, match="single value"):
        infer_task(["1", "1"], "y")


def test_blank_and_marked_cells_are_missing_numbers_and_a_blank_category_is_its_own() -> None:
    text = "a,c,y\n1,x,0\n,x,1\nNA,,0\nnan,z,1\n4,N/A,0\n"
    dataset = parse_csv(text, "y", {"c"}, regression=False)

    assert np.isnan(dataset.columns["a"]).tolist() == [False, True, True, True, False]
    assert dataset.columns["c"].tolist() == ["x", "x", "missing", "z", "missing"]
    schema = feature_schema(dataset)
    assert [(f.name, f.nullable) for f in schema.features] == [("a", True), ("c", True)]
    assert (schema.features[0].minimum, schema.features[0].maximum) == (1.0, 4.0)
