"""Deployed names derived from functions/config.py, so the stacks and the local runtime agree."""

from __future__ import annotations

from functions.config import StageConfig
from infra.settings import FunctionKey


def function_name(config: StageConfig, function: FunctionKey) -> str:
    """``mlops-prod-drift-check``: the name the local runtime gives the same function."""
    return config.resource_name(function.replace("_", "-"))


def handler(function: FunctionKey) -> str:
    return f"functions.handlers.{function}.lambda_handler"


def schedule_rule_name(config: StageConfig, function: FunctionKey) -> str:
    """The schedule rule's name, as the local runtime's scheduled events name it."""
    return f"{config.resource_name(function)}-schedule"


def aggregate_rule_name(config: StageConfig) -> str:
    """The rule that runs drift-check's ``aggregate`` action (functions/services/drift_hours.py)."""
    return f"{config.resource_name('drift_aggregate')}-schedule"


def api_name(config: StageConfig) -> str:
    return config.resource_name("api")


def code_deploy_names(config: StageConfig) -> tuple[str, str]:
    """CodeDeploy application and deployment group that shift the predict alias on code deployments."""
    return config.resource_name("predict"), config.resource_name("predict-live")


def code_deploy_alarm_names(config: StageConfig) -> tuple[str, str]:
    """The CodeDeploy rollback alarms: new-version errors and API 5xx."""
    return config.resource_name("code-deploy-version-errors"), config.resource_name("code-deploy-api-5xx")
