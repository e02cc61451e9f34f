"""The model card: everything recorded about one registered model version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.schema import FeatureSchema

Task = Literal["binary_classification", "multiclass_classification", "regression"]
VersionStatus = Literal["registered", "challenger", "champion", "previous", "rejected", "archived"]
CLASSIFICATION_TASKS: frozenset[str] = frozenset({"binary_classification", "multiclass_classification"})


class NumericBaseline(BaseModel):
    """Quantile bins of a numeric feature in the training data (edges has one more entry than proportions)."""

    model_config = ConfigDict(extra="forbid")

    edges: list[float]
    proportions: list[float]
    mean: float
    std: float
    missing: float = 0.0


class CategoricalBaseline(BaseModel):
    """Category frequencies of a categorical feature in the training data."""

    model_config = ConfigDict(extra="forbid")

    frequencies: dict[str, float]


class PredictionBaseline(BaseModel):
    """Distribution of the model's own output on validation data.

    For classifiers ``class_frequencies`` holds the predicted-label frequencies and, for binary
    tasks, ``edges``/``proportions`` bin the positive-class probability. For regression the
    bins are quantiles of the predicted value.
    """

    model_config = ConfigDict(extra="forbid")

    edges: list[float] | None = None
    proportions: list[float] | None = None
    class_frequencies: dict[str, float] | None = None


class DriftBaseline(BaseModel):
    """What drift-check compares live traffic against."""

    model_config = ConfigDict(extra="forbid")

    numeric: dict[str, NumericBaseline]
    categorical: dict[str, CategoricalBaseline]
    reference_sample: dict[str, list[Any]] = Field(
        description="A bounded random sample of training rows, column by column."
    )
    reference_size: int
    prediction: PredictionBaseline


class TrainingDataRef(BaseModel):
    """Where the training data came from, precisely enough to find it again."""

    model_config = ConfigDict(extra="forbid")

    uri: str
    sha256: str
    rows: int
    target: str
    train_rows: int
    validation_rows: int


class EstimatorSpec(BaseModel):
    """Which estimator to train and with what hyper-parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal[
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
        "ridge",
        "linear_regression",
    ]
    params: dict[str, Any] = Field(default_factory=dict)


class TrainingSpec(BaseModel):
    """What to train: the task, the target, which columns are categorical, and the estimator."""

    model_config = ConfigDict(extra="forbid")

    task: Task
    target: str
    categorical: list[str] = Field(default_factory=list)
    estimator: EstimatorSpec
    validation_fraction: float = Field(default=0.25, gt=0.0, lt=0.9)
    random_state: int = 42
    reference_sample_size: int = Field(default=1000, ge=10, le=100_000)


class ModelCard(BaseModel):
    """Immutable record of one model version, stored beside its artifact."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    name: str
    version: int = Field(ge=1)
    created_at: datetime
    artifact_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    artifact_bytes: int = Field(ge=1)
    libraries: dict[str, str]
    task: Task
    target: str
    classes: list[str | int] | None = None
    feature_schema: FeatureSchema
    training_data: TrainingDataRef
    estimator: EstimatorSpec
    metrics: dict[str, float]
    primary_metric: str
    baseline: DriftBaseline
    parent_version: int | None = None
    status: VersionStatus = "registered"
    description: str = ""

    @property
    def is_classifier(self) -> bool:
        return self.task in CLASSIFICATION_TASKS

    def summary(self) -> dict[str, Any]:
        """The public contract of the model: what ``GET /model`` answers."""
        return {
            "name": self.name,
            "version": self.version,
            "created_at": self.created_at.isoformat(),
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "estimator": self.estimator.kind,
            "features": [f.model_dump(exclude_none=True) for f in self.feature_schema.features],
            "metrics": self.metrics,
            "primary_metric": self.primary_metric,
            "artifact_sha256": self.artifact_sha256,
            "libraries": self.libraries,
            "parent_version": self.parent_version,
            "status": self.status,
        }
