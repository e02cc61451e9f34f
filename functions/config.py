"""The one configuration of names, limits and defaults, read by the functions, the local runtime and infra."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from functions.deployment import DEPLOYMENTS, DeploymentSettings
from functions.domain.card import EstimatorSpec, TrainingSpec
from functions.domain.drift_policy import Correction, drift_default

DEFAULT_MAX_BATCH_ROWS = 1000
DEFAULT_MAX_BODY_BYTES = 5 * 1024 * 1024  # Lambda caps the whole event at 6 MB; headers and context need room
DEFAULT_MAX_OUTCOMES = 1000
DEFAULT_CAPTURE_SAMPLE_RATE = 1.0
DEFAULT_CAPTURE_MAX_ROWS = 1000
DEFAULT_CAPTURE_MAX_AGE_SECONDS = 30.0
METRICS_NAMESPACE = "ServerlessMLOps"
# MODEL_VERSION of a predict version published when no model was champion yet: it answers 503 until
# the rollout controller's first promotion publishes a version pinned to the champion.
NO_CHAMPION = "none"
# What the storage stack exports (``StageConfig.export_name``): the other stacks import them; `mlops --aws` reads them.
STORAGE_EXPORTS = ("registry-bucket-name", "registry-bucket-arn", "data-bucket-name", "data-bucket-arn", "data-key-arn")


class DemoDataset(BaseModel):
    """The real data set shipped in ``data/`` and how the first model is trained from it."""

    model_config = ConfigDict(frozen=True)

    file: str = "breast_cancer.csv"
    training: TrainingSpec = TrainingSpec(
        task="binary_classification",
        target="target",
        estimator=EstimatorSpec(kind="logistic_regression", params={"C": 1.0}),
    )


class DriftConfig(BaseModel):
    """drift-check: window, thresholds and schedule (see functions/domain/drift/ for the rule)."""

    model_config = ConfigDict(frozen=True)

    schedule: str = "rate(1 hour)"
    window_hours: float = Field(default=24.0, gt=0)
    psi_warning: float = drift_default("psi_warning")
    psi_drift: float = drift_default("psi_drift")
    p_value_alpha: float = drift_default("p_value_alpha")
    correction: Correction = drift_default("correction")
    min_rows: int = drift_default("min_rows")
    performance_tolerance: float = drift_default("performance_tolerance")
    prediction_psi_drift: float = drift_default("prediction_psi_drift")
    sample_size: int = Field(default=5000, ge=100, description="Rows kept for KS: lowest row id hashes.")
    reports_prefix: str = "reports/drift"
    aggregates_prefix: str = "aggregates/drift"
    aggregate_schedule: str = Field(
        default="rate(15 minutes)", description="How often the recent hours' drift aggregates are brought up to date."
    )
    aggregate_hours: int = Field(
        default=2, ge=1, le=48, description="Hours each aggregation looks at (the current one too)."
    )


class RetrainConfig(BaseModel):
    """retrain: gates, budgets, the lock and the cooldown."""

    model_config = ConfigDict(frozen=True)

    schedule: str = "rate(7 days)"
    metric_tolerance: float = Field(default=0.01, ge=0, description="Allowed relative loss of the primary metric.")
    latency_budget_ms: float = Field(default=50.0, gt=0, description="1-row predict latency budget.")
    artifact_budget_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    lock_ttl_seconds: int = Field(default=900, gt=0)
    cooldown_seconds: int = Field(default=3600, ge=0)
    auto_deploy: bool = True
    validation_fraction: float = 0.25
    capture_days: float = 30.0


class RolloutConfig(BaseModel):
    """rollout: stages, bake time and the checks that roll a canary back."""

    model_config = ConfigDict(frozen=True)

    schedule: str = "rate(2 minutes)"
    stages: tuple[float, ...] = (0.1, 0.5, 1.0)
    bake_seconds: float = Field(default=600.0, ge=0)
    min_requests: int = Field(default=20, ge=0, description="Challenger requests needed before a stage can pass.")
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_p99_latency_ms: float = Field(default=1000.0, gt=0)
    max_prediction_psi: float = Field(default=0.25, gt=0)
    max_quality_drop: float = Field(default=0.05, ge=0)
    min_labeled: int = Field(default=20, ge=1)
    alias_name: str = "live"


class StageConfig(BaseModel):
    """Everything that differs between stages, and everything local and deployed must share."""

    model_config = ConfigDict(frozen=True)

    stage: str
    app_name: str = "mlops"
    region: str = "us-east-1"
    model_name: str = "breast-cancer"
    registry_bucket: str
    data_bucket: str
    capture_prefix: str = "capture"
    outcomes_prefix: str = "outcomes"
    datasets_prefix: str = "datasets"
    max_batch_rows: int = Field(default=DEFAULT_MAX_BATCH_ROWS, ge=1)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    max_outcomes: int = Field(default=DEFAULT_MAX_OUTCOMES, ge=1)
    capture_sample_rate: float = Field(default=DEFAULT_CAPTURE_SAMPLE_RATE, ge=0.0, le=1.0)
    capture_max_rows: int = DEFAULT_CAPTURE_MAX_ROWS
    capture_max_age_seconds: float = DEFAULT_CAPTURE_MAX_AGE_SECONDS
    metrics_namespace: str = METRICS_NAMESPACE
    log_level: str = "INFO"
    event_source: str = "mlops"
    drift: DriftConfig = DriftConfig()
    retrain: RetrainConfig = RetrainConfig()
    rollout: RolloutConfig = RolloutConfig()
    demo: DemoDataset = DemoDataset()
    deployment: DeploymentSettings | None = Field(
        default=None, description="Memory, timeouts, retention, throttling, alarm thresholds of a deployed stage."
    )

    def resource_name(self, what: str) -> str:
        """Name of a deployed resource (function, bus, alarm) of this stage."""
        return f"{self.app_name}-{self.stage}-{what}"

    @property
    def event_bus_name(self) -> str:
        return self.resource_name("events")

    @property
    def predict_function_name(self) -> str:
        return self.resource_name("predict")

    @property
    def canary_alarm_prefix(self) -> str:
        """Prefix of the alarms the rollout controller creates and deletes; the IAM scope of its alarm rights."""
        return f"{self.predict_function_name}-canary"

    def export_name(self, what: str) -> str:
        """The storage stack's CloudFormation export of ``what`` (one of ``STORAGE_EXPORTS``)."""
        if what not in STORAGE_EXPORTS:
            raise KeyError(f"no storage export {what!r}; the storage stack exports {', '.join(STORAGE_EXPORTS)}")
        return self.resource_name(what)


STAGES: dict[str, StageConfig] = {
    "local": StageConfig(
        stage="local",
        registry_bucket="mlops-local-registry",
        data_bucket="mlops-local-data",
        # Minutes instead of hours, so a `mlops serve` session shows the loop turning.
        drift=DriftConfig(schedule="rate(5 minutes)"),
        retrain=RetrainConfig(cooldown_seconds=300),
        rollout=RolloutConfig(schedule="rate(1 minute)", bake_seconds=60.0),
        deployment=DEPLOYMENTS["dev"],  # not deployed; the local runtime reports the same memory and timeouts
    ),
    "dev": StageConfig(
        stage="dev",
        registry_bucket="mlops-dev-registry",
        data_bucket="mlops-dev-data",
        log_level="DEBUG",
        deployment=DEPLOYMENTS["dev"],
    ),
    "prod": StageConfig(
        stage="prod",
        registry_bucket="mlops-prod-registry",
        data_bucket="mlops-prod-data",
        capture_sample_rate=0.2,
        deployment=DEPLOYMENTS["prod"],
    ),
}


def stage_config(stage: str) -> StageConfig:
    """The configuration of ``stage``; raises ``KeyError`` naming the known stages."""
    try:
        return STAGES[stage]
    except KeyError:
        raise KeyError(f"unknown stage {stage!r}; known stages: {', '.join(STAGES)}") from None


def function_environment(config: StageConfig, function: str) -> dict[str, str]:
    """Environment variables of one function, as the local runtime and the CDK stacks set them."""
    common = {
        "REGISTRY_BUCKET": config.registry_bucket,
        "DATA_BUCKET": config.data_bucket,
        "MODEL_NAME": config.model_name,
        "STAGE": config.stage,
        "POWERTOOLS_SERVICE_NAME": f"{config.app_name}-{function}",
        "POWERTOOLS_METRICS_NAMESPACE": config.metrics_namespace,
        "POWERTOOLS_LOG_LEVEL": config.log_level,
        "OMP_NUM_THREADS": "1",
    }
    # What the three functions of the closed loop all read: captured traffic, outcomes, the bus.
    loop = {
        **common,
        "CAPTURE_PREFIX": config.capture_prefix,
        "OUTCOMES_PREFIX": config.outcomes_prefix,
        "EVENT_BUS_NAME": config.event_bus_name,
        "EVENT_SOURCE": config.event_source,
    }
    if function == "predict":
        return {
            **common,
            "MAX_BATCH_ROWS": str(config.max_batch_rows),
            "MAX_BODY_BYTES": str(config.max_body_bytes),
            "CAPTURE_PREFIX": config.capture_prefix,
            "CAPTURE_SAMPLE_RATE": str(config.capture_sample_rate),
            "CAPTURE_MAX_ROWS": str(config.capture_max_rows),
            "CAPTURE_MAX_AGE_SECONDS": str(config.capture_max_age_seconds),
        }
    if function == "drift_check":
        d = config.drift
        return {
            **loop,
            "REPORTS_PREFIX": d.reports_prefix,
            "AGGREGATES_PREFIX": d.aggregates_prefix,
            "AGGREGATE_HOURS": str(d.aggregate_hours),
            "WINDOW_HOURS": str(d.window_hours),
            "PSI_WARNING": str(d.psi_warning),
            "PSI_DRIFT": str(d.psi_drift),
            "P_VALUE_ALPHA": str(d.p_value_alpha),
            "CORRECTION": d.correction,
            "MIN_ROWS": str(d.min_rows),
            "PERFORMANCE_TOLERANCE": str(d.performance_tolerance),
            "PREDICTION_PSI_DRIFT": str(d.prediction_psi_drift),
            "SAMPLE_SIZE": str(d.sample_size),
        }
    if function == "retrain":
        r = config.retrain
        return {
            **loop,
            "METRIC_TOLERANCE": str(r.metric_tolerance),
            "LATENCY_BUDGET_MS": str(r.latency_budget_ms),
            "ARTIFACT_BUDGET_BYTES": str(r.artifact_budget_bytes),
            "LOCK_TTL_SECONDS": str(r.lock_ttl_seconds),
            "COOLDOWN_SECONDS": str(r.cooldown_seconds),
            "AUTO_DEPLOY": "true" if r.auto_deploy else "false",
            "VALIDATION_FRACTION": str(r.validation_fraction),
            "CAPTURE_DAYS": str(r.capture_days),
        }
    if function == "rollout":
        o = config.rollout
        return {
            **loop,
            "PREDICT_FUNCTION_NAME": config.predict_function_name,
            "CANARY_ALARM_PREFIX": config.canary_alarm_prefix,
            "ALIAS_NAME": o.alias_name,
            "STAGES": ",".join(str(s) for s in o.stages),
            "BAKE_SECONDS": str(o.bake_seconds),
            "MIN_REQUESTS": str(o.min_requests),
            "MAX_ERROR_RATE": str(o.max_error_rate),
            "MAX_P99_LATENCY_MS": str(o.max_p99_latency_ms),
            "MAX_PREDICTION_PSI": str(o.max_prediction_psi),
            "MAX_QUALITY_DROP": str(o.max_quality_drop),
            "MIN_LABELED": str(o.min_labeled),
        }
    if function == "log_outcome":
        return {
            **common,
            "OUTCOMES_PREFIX": config.outcomes_prefix,
            "MAX_OUTCOMES": str(config.max_outcomes),
            "MAX_BODY_BYTES": str(config.max_body_bytes),
        }
    raise KeyError(f"unknown function {function!r}")
