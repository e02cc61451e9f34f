"""Deployment settings per stage (sizes, retention, limits, alarm thresholds): part of the one configuration.

``functions.config.StageConfig.deployment`` holds them, so the CDK stacks and the local runtime read
the same numbers; ``check_against`` refuses combinations that would break what the functions rely on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from functions.config import StageConfig

FunctionKey = Literal["predict", "log_outcome", "drift_check", "retrain", "rollout"]
FUNCTIONS: tuple[FunctionKey, ...] = ("predict", "log_outcome", "drift_check", "retrain", "rollout")
SCHEDULED: tuple[FunctionKey, ...] = ("drift_check", "retrain", "rollout")
LAMBDA_MAX_TIMEOUT_SECONDS = 900
# Log retentions offered, by days, with their aws_cdk.aws_logs.RetentionDays names.
LOG_RETENTION: dict[int, str] = {
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    731: "TWO_YEARS",
}
# aws_cdk.aws_codedeploy.LambdaDeploymentConfig members: how a code deployment shifts the alias.
CodeDeployment = Literal[
    "CANARY_10_PERCENT_5_MINUTES", "CANARY_10_PERCENT_10_MINUTES", "LINEAR_10_PERCENT_EVERY_1_MINUTE", "ALL_AT_ONCE"
]


class FunctionSizing(BaseModel):
    """Memory and timeout of one function."""

    model_config = ConfigDict(frozen=True)

    memory_mb: int = Field(ge=128, le=10240)
    timeout_seconds: int = Field(ge=1, le=LAMBDA_MAX_TIMEOUT_SECONDS)


class StorageSettings(BaseModel):
    """Lifecycle of what the buckets accumulate."""

    model_config = ConfigDict(frozen=True)

    capture_transition_days: int = Field(default=30, ge=30, description="capture/ to STANDARD_IA after this.")
    capture_expiration_days: int = Field(default=90, ge=1, description="capture/ is deleted after this.")
    reports_expiration_days: int = Field(default=365, ge=1)
    lock_noncurrent_days: int = Field(default=1, ge=1, description="Old versions of locks/ objects.")
    data_noncurrent_days: int = Field(default=30, ge=1, description="Old versions of data bucket objects.")
    access_log_expiration_days: int = Field(default=365, ge=1)


class ApiSettings(BaseModel):
    """API Gateway stage name and throttling (requests per second, burst)."""

    model_config = ConfigDict(frozen=True)

    stage_name: str = "v1"
    rate_limit: float = Field(default=50.0, gt=0)
    burst_limit: int = Field(default=100, ge=1)
    outcomes_rate_limit: float = Field(default=20.0, gt=0)
    outcomes_burst_limit: int = Field(default=40, ge=1)


class AlarmSettings(BaseModel):
    """Thresholds of the static alarms (the canary's own alarms come from ``RolloutConfig``)."""

    model_config = ConfigDict(frozen=True)

    period_seconds: int = Field(default=300, ge=60)
    api_5xx_threshold: int = Field(default=5, ge=1, description="5xx answers per period.")
    predict_errors_threshold: int = Field(default=1, ge=1, description="Failed invocations per period.")
    predict_throttles_threshold: int = Field(default=1, ge=1)
    predict_p99_latency_ms: float | None = Field(
        default=None, gt=0, description="Default: the rollout's max_p99_latency_ms, so both judge alike."
    )
    latency_evaluation_periods: int = Field(default=3, ge=1)
    capture_failures_threshold: int = Field(default=1, ge=1)
    thin_drift_windows: int = Field(
        default=3, ge=1, le=3, description="Consecutive INSUFFICIENT_DATA verdicts that alarm (query window: 3 h)."
    )


class DeploymentSettings(BaseModel):
    """What one deployed stage needs beyond ``StageConfig``."""

    model_config = ConfigDict(frozen=True)

    functions: dict[FunctionKey, FunctionSizing]
    log_retention_days: int = 30
    code_deployment: CodeDeployment = "CANARY_10_PERCENT_5_MINUTES"
    predict_provisioned_concurrency: int = Field(default=0, ge=0)
    async_event_max_age_seconds: int = Field(default=3600, ge=60, le=21600)
    api_cloudwatch_role: bool = Field(
        default=True, description="Set API Gateway's account-level logging role (needed once per account/region)."
    )
    storage: StorageSettings = StorageSettings()
    api: ApiSettings = ApiSettings()
    alarms: AlarmSettings = AlarmSettings()

    def sizing(self, function: FunctionKey) -> FunctionSizing:
        return self.functions[function]

    def p99_latency_ms(self, config: StageConfig) -> float:
        return self.alarms.predict_p99_latency_ms or config.rollout.max_p99_latency_ms

    def check_against(self, config: StageConfig) -> DeploymentSettings:
        """Raise ``ValueError`` listing every setting that contradicts ``config``; return self otherwise."""
        problems: list[str] = []
        if set(self.functions) != set(FUNCTIONS):
            problems.append(f"functions must size exactly {', '.join(FUNCTIONS)}")
        if self.log_retention_days not in LOG_RETENTION:
            problems.append(f"log_retention_days must be one of {sorted(LOG_RETENTION)}")
        retrain = self.functions.get("retrain")
        if retrain and retrain.timeout_seconds > config.retrain.lock_ttl_seconds:
            problems.append(
                f"retrain timeout {retrain.timeout_seconds}s exceeds its lock TTL {config.retrain.lock_ttl_seconds}s:"
                " a running retrain could lose its lock"
            )
        rollout = self.functions.get("rollout")
        if rollout and rollout.timeout_seconds >= rate_seconds(config.rollout.schedule):
            problems.append("rollout timeout must be shorter than its schedule, so ticks do not pile up")
        days_read = max(config.retrain.capture_days, config.drift.window_hours / 24)
        if self.storage.capture_expiration_days <= days_read:
            problems.append(
                f"capture expires after {self.storage.capture_expiration_days} days but retrain/drift-check read"
                f" {days_read:g} days back"
            )
        if self.storage.capture_transition_days >= self.storage.capture_expiration_days:
            problems.append("capture must transition to STANDARD_IA before it expires")
        if problems:
            raise ValueError(f"infra settings of stage {config.stage!r}: " + "; ".join(problems))
        return self


def rate_seconds(expression: str) -> int:
    """Seconds between runs of an EventBridge ``rate(N unit)`` expression (``cron(...)`` is not a rate)."""
    inner = expression.strip().removeprefix("rate(").removesuffix(")").split()
    factor = {"minute": 60, "hour": 3600, "day": 86400}.get(inner[1].rstrip("s")) if len(inner) == 2 else None
    if factor is None or not inner[0].isdigit():
        raise ValueError(f"not a rate expression: {expression!r}")
    return int(inner[0]) * factor


_SMALL = {
    "predict": FunctionSizing(memory_mb=1536, timeout_seconds=29),
    "log_outcome": FunctionSizing(memory_mb=512, timeout_seconds=29),
    "drift_check": FunctionSizing(memory_mb=2048, timeout_seconds=300),
    "retrain": FunctionSizing(memory_mb=3008, timeout_seconds=900),
    "rollout": FunctionSizing(memory_mb=512, timeout_seconds=90),
}

DEPLOYMENTS: dict[str, DeploymentSettings] = {
    "dev": DeploymentSettings(functions=_SMALL, log_retention_days=14),
    "prod": DeploymentSettings(
        functions={**_SMALL, "drift_check": FunctionSizing(memory_mb=3008, timeout_seconds=600)},
        log_retention_days=90,
        storage=StorageSettings(capture_expiration_days=180, access_log_expiration_days=730),
        api=ApiSettings(rate_limit=200.0, burst_limit=400),
    ),
}
