"""The one configuration of names, limits and defaults, read by the functions, the local runtime and infra."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from functions.domain.card import EstimatorSpec, TrainingSpec

DEFAULT_MAX_BATCH_ROWS = 1000
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
DEFAULT_MAX_OUTCOMES = 1000
DEFAULT_CAPTURE_SAMPLE_RATE = 1.0
DEFAULT_CAPTURE_MAX_ROWS = 1000
DEFAULT_CAPTURE_MAX_AGE_SECONDS = 30.0
METRICS_NAMESPACE = "ServerlessMLOps"


class DemoDataset(BaseModel):
    """The real data set shipped in ``data/`` and how the first model is trained from it."""

    model_config = ConfigDict(frozen=True)

    file: str = "breast_cancer.csv"
    training: TrainingSpec = TrainingSpec(
        task="binary_classification",
        target="target",
        estimator=EstimatorSpec(kind="logistic_regression", params={"C": 1.0}),
    )


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
    demo: DemoDataset = DemoDataset()


STAGES: dict[str, StageConfig] = {
    "local": StageConfig(stage="local", registry_bucket="mlops-local-registry", data_bucket="mlops-local-data"),
    "dev": StageConfig(
        stage="dev", registry_bucket="mlops-dev-registry", data_bucket="mlops-dev-data", log_level="DEBUG"
    ),
    "prod": StageConfig(
        stage="prod", registry_bucket="mlops-prod-registry", data_bucket="mlops-prod-data", capture_sample_rate=0.2
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
    if function == "log_outcome":
        return {
            **common,
            "OUTCOMES_PREFIX": config.outcomes_prefix,
            "MAX_OUTCOMES": str(config.max_outcomes),
            "MAX_BODY_BYTES": str(config.max_body_bytes),
        }
    raise KeyError(f"unknown function {function!r}")
