"""One settings model per function, read from the environment once at cold start."""

from __future__ import annotations

import os
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions import config
from functions.domain.drift_policy import Correction, drift_default


class _Common(BaseModel):
    """Fields are read from environment variables of the same name (any case); arguments win.

    A plain pydantic model, not pydantic-settings: every field is a scalar, and the predict
    function's cold start does not pay for importing a settings framework.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_environment(cls) -> Self:
        """The settings as the function's environment variables give them."""
        return cls.model_validate({})

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        given = dict(data) if isinstance(data, dict) else {}
        environment = {name.lower(): value for name, value in os.environ.items()}
        for field in cls.model_fields:
            if field not in given and field in environment:
                given[field] = environment[field]
        return given

    registry_bucket: str = Field(min_length=3)
    data_bucket: str = Field(min_length=3)
    model_name: str = Field(min_length=1)
    max_body_bytes: int = Field(default=config.DEFAULT_MAX_BODY_BYTES, ge=1024)


class PredictSettings(_Common):
    """Settings of the predict function."""

    model_version: int | Literal["none"] | None = Field(
        default=None,
        description="Pin a model version; 'none': deployed before any champion, answers 503; unset: resolve the alias.",
    )
    model_alias: str = "champion"
    max_batch_rows: int = Field(default=config.DEFAULT_MAX_BATCH_ROWS, ge=1)
    capture_prefix: str = "capture"
    capture_sample_rate: float = Field(default=config.DEFAULT_CAPTURE_SAMPLE_RATE, ge=0.0, le=1.0)
    capture_max_rows: int = Field(default=config.DEFAULT_CAPTURE_MAX_ROWS, ge=1)
    capture_max_age_seconds: float = Field(default=config.DEFAULT_CAPTURE_MAX_AGE_SECONDS, gt=0)

    @model_validator(mode="after")
    def _positive_pin(self) -> Self:
        if isinstance(self.model_version, int) and self.model_version < 1:
            raise ValueError(f"model_version must be a version (>= 1) or {config.NO_CHAMPION!r}")
        return self

    @property
    def pinned_version(self) -> int | None:
        """The model version this Lambda version is pinned to (None: unpinned, or pinned to no champion)."""
        return self.model_version if isinstance(self.model_version, int) else None


class LogOutcomeSettings(_Common):
    """Settings of the log-outcome function."""

    outcomes_prefix: str = "outcomes"
    max_outcomes: int = Field(default=config.DEFAULT_MAX_OUTCOMES, ge=1)
    model_alias: str = "champion"


class DriftCheckSettings(_Common):
    """Settings of the drift-check function."""

    model_alias: str = "champion"
    capture_prefix: str = "capture"
    outcomes_prefix: str = "outcomes"
    reports_prefix: str = "reports/drift"
    aggregates_prefix: str = "aggregates/drift"
    aggregate_hours: int = Field(default=2, ge=1, le=48)
    event_bus_name: str
    event_source: str = "mlops"
    window_hours: float = Field(default=24.0, gt=0)
    psi_warning: float = drift_default("psi_warning")
    psi_drift: float = drift_default("psi_drift")
    p_value_alpha: float = drift_default("p_value_alpha")
    correction: Correction = drift_default("correction")
    min_rows: int = Field(default=drift_default("min_rows"), ge=1)
    performance_tolerance: float = Field(default=drift_default("performance_tolerance"), ge=0)
    prediction_psi_drift: float = drift_default("prediction_psi_drift")
    sample_size: int = Field(default=5000, ge=100)


class RetrainSettings(_Common):
    """Settings of the retrain function."""

    capture_prefix: str = "capture"
    outcomes_prefix: str = "outcomes"
    event_bus_name: str
    event_source: str = "mlops"
    metric_tolerance: float = Field(default=0.01, ge=0)
    latency_budget_ms: float = Field(default=50.0, gt=0)
    artifact_budget_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    lock_ttl_seconds: int = Field(default=900, gt=0)
    cooldown_seconds: int = Field(default=3600, ge=0)
    auto_deploy: bool = True
    validation_fraction: float = Field(default=0.25, gt=0, lt=0.9)
    capture_days: float = Field(default=30.0, gt=0, description="How far back captured rows with outcomes are used.")


class RolloutSettings(_Common):
    """Settings of the rollout function."""

    capture_prefix: str = "capture"
    predict_function_name: str
    canary_alarm_prefix: str = Field(min_length=1)
    alias_name: str = "live"
    stages: str = "0.1,0.5,1.0"
    bake_seconds: float = Field(default=600.0, ge=0)
    min_requests: int = Field(default=20, ge=0)
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_p99_latency_ms: float = Field(default=1000.0, gt=0)
    max_prediction_psi: float = Field(default=0.25, gt=0)
    max_quality_drop: float = Field(default=0.05, ge=0)
    min_labeled: int = Field(default=20, ge=1)
    outcomes_prefix: str = "outcomes"
    event_bus_name: str
    event_source: str = "mlops"
    powertools_metrics_namespace: str = "ServerlessMLOps"
    alarm_topic_arn: str | None = None
    codedeploy_application: str | None = None  # with the group: CodeDeploy's deployments of the alias, watched
    codedeploy_deployment_group: str | None = None

    @property
    def stage_weights(self) -> tuple[float, ...]:
        return tuple(float(x) for x in self.stages.split(",") if x.strip())
