"""The model card: everything recorded about one registered model version."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.domain.estimators import EstimatorKind
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
    """Category frequencies of a categorical feature in the training data, and the counts behind them.

    ``counts`` is what the chi-square test compares live counts with (a two-sample test: the
    training split is a sample too); cards registered before it was kept have frequencies only.
    """

    model_config = ConfigDict(extra="forbid")

    frequencies: dict[str, float]
    counts: dict[str, int] | None = None


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
    source: Literal["training", "traffic"] = Field(
        default="training",
        description="training: the training split; traffic: the captured traffic of the drift that triggered "
        "this retrain, which the version is expected to serve (and the model's answers to it)",
    )
    traffic_rows: int | None = Field(default=None, description="rows of traffic the baseline was built from")


class CapturedRowsRef(BaseModel):
    """The captured rows (with outcomes) a retrain added to the base dataset."""

    model_config = ConfigDict(extra="forbid")

    rows: int = Field(ge=0)
    window_start: datetime
    window_end: datetime
    row_ids_sha256: str = Field(description="SHA-256 of the sorted row ids, one per line")


class TrainingDataRef(BaseModel):
    """Where the training data came from, precisely enough to find it again.

    ``uri`` and ``sha256`` name the base dataset (stored under its hash); a retrained version
    also records the captured rows it added (``captured``).
    """

    model_config = ConfigDict(extra="forbid")

    uri: str
    sha256: str
    rows: int
    target: str
    train_rows: int
    validation_rows: int
    captured: CapturedRowsRef | None = None


class EstimatorSpec(BaseModel):
    """Which estimator to train and with what hyper-parameters."""

    model_config = ConfigDict(extra="forbid")

    kind: EstimatorKind
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


ArtifactRole = Literal["serving", "pipeline"]
ArtifactFormat = Literal["onnx", "skops", "joblib"]
# The file each role is stored as, by format ("joblib" only in versions registered before ONNX serving).
ARTIFACT_FILES: dict[str, str] = {"onnx": "model.onnx", "skops": "model.skops", "joblib": "model.joblib"}


class ArtifactRef(BaseModel):
    """One stored artifact of a version: its file, format, SHA-256 and size."""

    model_config = ConfigDict(extra="forbid")

    file: str
    format: ArtifactFormat
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=1)


class FidelityWorst(BaseModel):
    """One of the rows where the serving graph and the pipeline differ the most."""

    model_config = ConfigDict(extra="forbid")

    rows: str = Field(description="which row set: validation, reference or edge")
    row: int
    output: str = Field(description="the class whose probability, or 'value' for regression")
    pipeline: float
    graph: float
    difference: float


class GraphFidelity(BaseModel):
    """How closely the ONNX graph reproduces the scikit-learn pipeline, measured before registration."""

    model_config = ConfigDict(extra="forbid")

    rows: dict[str, int] = Field(description="rows checked per row set (validation, reference, edge)")
    tolerance: float = Field(description="allowed |graph - pipeline| / max(1, |pipeline|)")
    max_abs_difference: float
    max_scaled_difference: float
    label_mismatches: int = 0
    near_ties: int = Field(default=0, description="rows whose top two probabilities are too close to need one label")
    worst: list[FidelityWorst] = Field(default_factory=list)


class CannedPrediction(BaseModel):
    """A reference row and what the graph answered for it at registration: checked at every load."""

    model_config = ConfigDict(extra="forbid")

    features: dict[str, float | str]
    outputs: list[float]


class ServingGraphInfo(BaseModel):
    """How the serving graph was made and checked."""

    model_config = ConfigDict(extra="forbid")

    converter: str
    versions: dict[str, str] = Field(description="converter, onnx and onnxruntime versions")
    opsets: dict[str, int]
    inputs: Literal["matrix", "per_feature"]
    output: str
    fidelity: GraphFidelity
    canned: CannedPrediction


class ModelCard(BaseModel):
    """Immutable record of one model version, stored beside its artifact."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1, 2] = 2
    name: str
    version: int = Field(ge=1)
    created_at: datetime
    artifacts: dict[ArtifactRole, ArtifactRef]
    serving_graph: ServingGraphInfo | None = Field(
        default=None, description="None only for a version registered before ONNX serving and not yet converted"
    )
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
    upgraded_from: dict[str, Any] | None = Field(
        default=None,
        description="set by `mlops upgrade-registry`: the pickled artifact this version was converted from",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_schema_1(cls, data: Any) -> Any:
        """A card of schema 1 named one joblib artifact; read it as a version that needs converting."""
        if isinstance(data, dict) and data.get("schema_version") == 1 and "artifact_sha256" in data:
            data = dict(data)
            data["artifacts"] = {
                "pipeline": {
                    "file": ARTIFACT_FILES["joblib"],
                    "format": "joblib",
                    "sha256": data.pop("artifact_sha256"),
                    "bytes": data.pop("artifact_bytes"),
                }
            }
        return data

    @property
    def serving_artifact(self) -> ArtifactRef | None:
        """The ONNX graph predict serves, or None for a version that has not been converted."""
        ref = self.artifacts.get("serving")
        return ref if ref is not None and ref.format == "onnx" and self.serving_graph is not None else None

    @property
    def artifact_sha256(self) -> str:
        """SHA-256 of what serves this version (the ONNX graph; the pickle of an unconverted version)."""
        ref = self.serving_artifact or self.artifacts["pipeline"]
        return ref.sha256

    @property
    def artifact_bytes(self) -> int:
        """Size of the serving graph (the pickle of an unconverted version)."""
        ref = self.serving_artifact or self.artifacts["pipeline"]
        return ref.bytes

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
            "artifacts": {role: ref.model_dump() for role, ref in self.artifacts.items()},
            "serving_graph": None
            if self.serving_graph is None
            else self.serving_graph.model_dump(mode="json", exclude={"canned"}),
            "libraries": self.libraries,
            "parent_version": self.parent_version,
            "status": self.status,
        }
