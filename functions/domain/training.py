"""Training a candidate model from a dataset and an estimator spec, and measuring it."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from functions.domain.baseline import compute_baseline
from functions.domain.card import CLASSIFICATION_TASKS, DriftBaseline, EstimatorSpec, Task, TrainingSpec
from functions.domain.dataset import MISSING_CATEGORY, Dataset
from functions.domain.estimators import ESTIMATORS
from functions.domain.schema import FeatureSchema, FeatureSpec
from functions.errors import TrainingError

PRIMARY_METRIC: dict[str, str] = {
    "binary_classification": "roc_auc",
    "multiclass_classification": "f1_macro",
    "regression": "rmse",
}
LOWER_IS_BETTER = frozenset({"rmse", "mae", "log_loss"})


@dataclass
class TrainedModel:
    """A fitted pipeline with everything its model card needs."""

    model: Pipeline
    schema: FeatureSchema
    classes: list[Any] | None
    metrics: dict[str, float]
    primary_metric: str
    baseline: DriftBaseline
    train_rows: int
    validation_rows: int
    validation: Dataset


def feature_schema(dataset: Dataset) -> FeatureSchema:
    """Derive the schema (ranges, categories) from the training data."""
    specs = []
    for name, col in dataset.columns.items():
        if name in dataset.categorical:
            categories = tuple(sorted(set(col.tolist())))
            specs.append(
                FeatureSpec(
                    name=name, kind="categorical", categories=categories, nullable=MISSING_CATEGORY in categories
                )
            )
        else:
            missing = bool(np.isnan(col).any())
            specs.append(
                FeatureSpec(
                    name=name,
                    kind="numeric",
                    minimum=float(np.nanmin(col)),
                    maximum=float(np.nanmax(col)),
                    nullable=missing,
                )
            )
    return FeatureSchema(features=tuple(specs))


def build_pipeline(schema: FeatureSchema, task: Task, estimator: EstimatorSpec) -> Pipeline:
    """Preprocessing (scaling, one-hot encoding of categories) plus the estimator, in one pipeline."""
    kind = ESTIMATORS[estimator.kind]
    path = kind.class_path(task in CLASSIFICATION_TASKS)
    if path is None:
        raise TrainingError(f"estimator {estimator.kind!r} cannot be used for {task}")
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    try:
        model = cls(**{**kind.defaults, **estimator.params})
    except TypeError as exc:
        raise TrainingError(f"bad parameters for {estimator.kind}: {exc}") from exc
    numeric = [i for i, f in enumerate(schema.features) if f.kind == "numeric"]
    categorical = [i for i, f in enumerate(schema.features) if f.kind == "categorical"]
    transformers: list[tuple[str, Any, list[int]]] = []
    nullable = [i for i in numeric if schema.features[i].nullable]
    complete = [i for i in numeric if not schema.features[i].nullable]
    if nullable:
        # Every kind imputes (the median) inside the pipeline, so the served graph does too: one way that
        # converts faithfully for all of them (HistGradientBoosting's native NaN handling included).
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if kind.scaled:
            steps.append(("scale", StandardScaler()))
        transformers.append(("nullable", Pipeline(steps) if len(steps) > 1 else steps[0][1], nullable))
    if complete:
        transformers.append(("numeric", StandardScaler() if kind.scaled else "passthrough", complete))
    if categorical:
        cats = [list(schema.features[i].categories or ()) for i in categorical]
        encoder = OneHotEncoder(categories=cats, handle_unknown="ignore", sparse_output=False)
        transformers.append(("categorical", encoder, categorical))
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("estimator", model)])


def evaluate(model: Any, X: np.ndarray, y: np.ndarray, task: Task) -> dict[str, float]:
    """Validation metrics for ``task`` (classification: accuracy, F1, ROC AUC, log loss; regression: MAE, RMSE, R²)."""
    if task == "regression":
        pred = model.predict(X)
        return {
            "mae": float(mean_absolute_error(y, pred)),
            "rmse": float(root_mean_squared_error(y, pred)),
            "r2": float(r2_score(y, pred)),
        }
    proba = model.predict_proba(X)
    classes = model.classes_
    pred = classes[np.argmax(proba, axis=1)]
    out = {
        "accuracy": float(accuracy_score(y, pred)),
        "f1_macro": float(f1_score(y, pred, average="macro")),
        "log_loss": float(log_loss(y, proba, labels=classes)),
    }
    if task == "binary_classification":
        out["f1"] = float(f1_score(y, pred, pos_label=classes[1]))
        out["roc_auc"] = float(roc_auc_score(y == classes[1], proba[:, 1]))
    elif len(np.unique(y)) == len(classes):
        out["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


def _check_classes(dataset: Dataset, spec: TrainingSpec) -> None:
    if spec.task not in CLASSIFICATION_TASKS:
        return
    n_classes = len(np.unique(dataset.target))
    expected = "binary_classification" if n_classes == 2 else "multiclass_classification"
    if n_classes < 2 or expected != spec.task:
        hint = " (leave --task out to infer it from the target)" if n_classes >= 2 else ""
        raise TrainingError(f"target {spec.target!r} has {n_classes} classes, which does not fit {spec.task}{hint}")


def check_spec(dataset: Dataset, spec: TrainingSpec) -> None:
    """Everything about training ``spec`` on ``dataset`` that can be checked without fitting: the
    classes fit the task, the estimator kind fits the task, its parameters are ones it takes with
    values it accepts. Raises ``TrainingError`` naming the problem."""
    _check_classes(dataset, spec)
    pipeline = build_pipeline(feature_schema(dataset), spec.task, spec.estimator)
    estimator = pipeline.named_steps["estimator"]
    try:
        estimator._validate_params()  # scikit-learn's own parameter constraints, as fit() checks them
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"bad parameters for {spec.estimator.kind}: {exc}") from exc


def train(dataset: Dataset, spec: TrainingSpec) -> TrainedModel:
    """Fit the spec's pipeline on a train split and measure it on the held-out split.

    Args:
        dataset: the full training table.
        spec: task, target, categorical columns, estimator.

    Returns:
        The fitted model, its schema, validation metrics and drift baseline.
    """
    classification = spec.task in CLASSIFICATION_TASKS
    _check_classes(dataset, spec)
    schema = feature_schema(dataset)
    index = np.arange(dataset.n_rows)
    train_idx, valid_idx = train_test_split(
        index,
        test_size=spec.validation_fraction,
        random_state=spec.random_state,
        stratify=dataset.target if classification else None,
    )
    names = schema.names
    train_set, valid_set = dataset.take(train_idx), dataset.take(valid_idx)
    X_train, X_valid = train_set.matrix(names), valid_set.matrix(names)
    pipeline = build_pipeline(schema, spec.task, spec.estimator)
    try:
        pipeline.fit(X_train, train_set.target)
    except ValueError as exc:
        raise TrainingError(f"training failed: {exc}") from exc
    metrics = evaluate(pipeline, X_valid, valid_set.target, spec.task)
    classes = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_] if classification else None
    baseline = compute_baseline(
        train_set,
        schema,
        valid_predictions=model_outputs(pipeline, X_valid, classification),
        classes=classes,
        task=spec.task,
        sample_size=spec.reference_sample_size,
        seed=spec.random_state,
    )
    return TrainedModel(
        model=pipeline,
        schema=schema,
        classes=classes,
        metrics=metrics,
        primary_metric=PRIMARY_METRIC[spec.task],
        baseline=baseline,
        train_rows=len(train_idx),
        validation_rows=len(valid_idx),
        validation=valid_set,
    )


def model_outputs(model: Any, X: np.ndarray, classification: bool) -> np.ndarray:
    return model.predict_proba(X) if classification else model.predict(X)
