"""rollout: every few minutes (EventBridge schedule) one tick of the canary controller; operators send commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from functions.adapters.capture_reader import S3CaptureReader
from functions.adapters.cloudwatch import CloudWatchAdapter
from functions.adapters.codedeploy import CodeDeployWatcher
from functions.adapters.events import EventBridgePublisher
from functions.adapters.lambda_alias import LambdaAliasDeployer
from functions.adapters.locks import S3DeployLock
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.bootstrap import AwsClients
from functions.domain.rollout import RolloutPolicy
from functions.handlers.scheduled import instrument_scheduled
from functions.observability import logger, metrics
from functions.services import rollout
from functions.settings import RolloutSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class OperatorCommand(BaseModel):
    """An operator's invocation: ``{"action": "promote" | "rollback" | "restore" | "pause" | "resume" | "status"}``."""

    model_config = ConfigDict(extra="ignore")

    action: Literal["tick", "promote", "rollback", "restore", "pause", "resume", "status"] = "tick"
    reason: str = "rolled back by an operator"
    canary: bool = Field(default=False, description="promote: a waiting challenger's stepped canary, not at once")


def build_ports(settings: RolloutSettings, clients: AwsClients, namespace: str) -> rollout.RolloutPorts:
    deployments = (
        CodeDeployWatcher(clients.codedeploy, settings.codedeploy_application, settings.codedeploy_deployment_group)
        if settings.codedeploy_application and settings.codedeploy_deployment_group
        else None
    )
    return rollout.RolloutPorts(
        store=S3RolloutStore(clients.s3, settings.registry_bucket),
        registry=S3ModelRegistry(clients.s3, settings.registry_bucket),
        deployer=LambdaAliasDeployer(clients.lambda_, settings.predict_function_name, settings.alias_name),
        cloudwatch=CloudWatchAdapter(clients.cloudwatch, namespace),
        capture=S3CaptureReader(clients.s3, settings.data_bucket, settings.capture_prefix),
        outcomes=S3OutcomeStore(clients.s3, settings.data_bucket, settings.outcomes_prefix),
        publisher=EventBridgePublisher(clients.events, settings.event_bus_name, settings.event_source),
        alarm_prefix=settings.canary_alarm_prefix,
        max_p99_latency_ms=settings.max_p99_latency_ms,
        alarm_actions=[settings.alarm_topic_arn] if settings.alarm_topic_arn else [],
        deploy_lock=S3DeployLock(clients.s3, settings.registry_bucket),
        deployments=deployments,
    )


def policy_of(settings: RolloutSettings) -> RolloutPolicy:
    return RolloutPolicy(
        stages=settings.stage_weights,
        bake_seconds=settings.bake_seconds,
        min_requests=settings.min_requests,
        max_error_rate=settings.max_error_rate,
        max_prediction_psi=settings.max_prediction_psi,
        max_quality_drop=settings.max_quality_drop,
        min_labeled=settings.min_labeled,
    )


class RolloutFunction:
    """One rollout execution environment."""

    def __init__(self, settings: RolloutSettings, clients: AwsClients, namespace: str) -> None:
        self.settings = settings
        self.ports = build_ports(settings, clients, namespace)
        self.policy = policy_of(settings)

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        command = OperatorCommand.model_validate(event.get("detail") if "detail-type" in event else event)
        name = self.settings.model_name
        if command.action == "status":
            return {"action": "status", "state": self.ports.store.load(name)[0].model_dump(mode="json")}
        if command.action == "promote":
            result = rollout.promote(self.ports, name, self.policy, canary=command.canary)
        elif command.action == "restore":
            result = rollout.restore_previous(self.ports, name)
        elif command.action == "rollback":
            result = rollout.rollback(self.ports, name, command.reason)
        elif command.action in ("pause", "resume"):
            result = rollout.pause(self.ports, name, command.action == "pause")
        else:
            result = rollout.tick(self.ports, name, self.policy)
        metrics.add_dimension(name="model_name", value=name)
        metrics.add_metric(name="RolloutWeight", unit="None", value=result.state.weight)
        if result.action == "rollback":
            metrics.add_metric(name="Rollbacks", unit="Count", value=1)
        if result.records_skipped:
            metrics.add_metric(name="RecordsSkipped", unit="Count", value=sum(result.records_skipped.values()))
        logger.info(
            "rollout tick",
            extra={
                "action": result.action,
                "reason": result.reason,
                "status": result.state.status,
                "weight": result.state.weight,
            },
        )
        return result.as_dict()


def instrument(function: RolloutFunction) -> Handler:
    """The Lambda handler of one execution environment (see ``instrument_scheduled``)."""
    return instrument_scheduled(function.handle)


_default: Handler | None = None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _default  # noqa: PLW0603 - one handler per execution environment, created on first use
    if _default is None:
        settings = RolloutSettings.from_environment()
        _default = instrument(RolloutFunction(settings, AwsClients(), settings.powertools_metrics_namespace))
    return _default(event, context)
