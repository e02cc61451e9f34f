"""Deployment settings per stage, as the CDK app reads them from the one configuration (functions/config.py)."""

from __future__ import annotations

from functions.config import STAGES, StageConfig, stage_config
from functions.deployment import (
    FUNCTIONS,
    LAMBDA_MAX_TIMEOUT_SECONDS,
    LOG_RETENTION,
    SCHEDULED,
    AlarmSettings,
    ApiSettings,
    CodeDeployment,
    DeploymentSettings,
    FunctionKey,
    FunctionSizing,
    StorageSettings,
    rate_seconds,
)

InfraSettings = DeploymentSettings
INFRA_STAGES: dict[str, DeploymentSettings] = {
    name: config.deployment for name, config in STAGES.items() if config.deployment is not None and name != "local"
}

__all__ = [
    "FUNCTIONS",
    "INFRA_STAGES",
    "LAMBDA_MAX_TIMEOUT_SECONDS",
    "LOG_RETENTION",
    "SCHEDULED",
    "AlarmSettings",
    "ApiSettings",
    "CodeDeployment",
    "FunctionKey",
    "FunctionSizing",
    "InfraSettings",
    "StorageSettings",
    "infra_settings",
    "rate_seconds",
]


def infra_settings(stage: str) -> tuple[StageConfig, DeploymentSettings]:
    """The shared configuration of ``stage`` and its deployment settings, checked against each other."""
    config = stage_config(stage)
    settings = INFRA_STAGES.get(stage)
    if settings is None:
        raise KeyError(f"stage {stage!r} is not deployable; deployable stages: {', '.join(INFRA_STAGES)}")
    return config, settings.check_against(config)
