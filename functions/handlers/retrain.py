"""retrain: on a schedule, a drift or performance event, or an operator's request (EventBridge → Lambda).

A failed retrain returns ``status: "failed"`` instead of raising. Lambda would retry a raised
error twice (asynchronous invocation), repeating a failure that is almost always deterministic
(bad data, a broken estimator spec) at the cost of up to 15 minutes each; the next schedule or
drift event retries anyway. The failure is not silent: it is logged with its stack trace, counted
as ``RetrainFailures`` (alarmed on), and recorded as the outcome of the run in the cooldown record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from functions.adapters.capture_reader import S3CaptureReader
from functions.adapters.datasets import S3DatasetStore
from functions.adapters.events import MODEL_DRIFT_DETECTED, MODEL_PERFORMANCE_DEGRADED, EventBridgePublisher
from functions.adapters.locks import S3RetrainHistory, S3RetrainLock, utc_now
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.bootstrap import AwsClients
from functions.handlers.scheduled import instrument_scheduled
from functions.observability import logger, metrics
from functions.services.retrain import (
    RetrainOptions,
    RetrainPorts,
    RetrainResult,
    Trigger,
    TriggerKind,
    describe_failure,
    retrain,
)
from functions.settings import RetrainSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
SCHEDULED = "Scheduled Event"
TRIGGERS: dict[str, TriggerKind] = {
    SCHEDULED: "schedule",
    MODEL_DRIFT_DETECTED: "drift",
    MODEL_PERFORMANCE_DEGRADED: "performance",
}
OUTCOME_METRIC = {
    "registered": "CandidateRegistered",
    "rejected": "CandidateRejected",
    "skipped": "RetrainSkipped",
    "failed": "RetrainFailures",
}


class OperatorEvent(BaseModel):
    """``{"trigger": "operator", "force": true}``: an operator's request (``force`` skips the cooldown only)."""

    model_config = ConfigDict(extra="forbid")

    trigger: Literal["operator"]
    force: bool = False
    reason: str = ""


class ModelEventDetail(BaseModel):
    """The part of a drift-check event's detail that retrain reads."""

    model_config = ConfigDict(extra="ignore")

    model_name: str | None = None


_EVENT: TypeAdapter[OperatorEvent | EventBridgeModel] = TypeAdapter(OperatorEvent | EventBridgeModel)


def parse_trigger(event: dict[str, Any], model_name: str) -> Trigger | str:
    """The trigger an event asks for, or why it asks for nothing this function does."""
    try:
        parsed = _EVENT.validate_python(event)
    except PydanticValidationError as exc:
        return f"unsupported event: neither an EventBridge event nor an operator request ({exc.error_count()} errors)"
    if isinstance(parsed, OperatorEvent):
        return Trigger("operator", parsed.reason, force=parsed.force)
    kind = TRIGGERS.get(parsed.detail_type)
    if kind is None:
        return f"unsupported event: detail-type {parsed.detail_type!r}"
    if kind != "schedule":
        about = ModelEventDetail.model_validate(parsed.detail).model_name
        if about not in (None, model_name):
            return f"the event is about model {about!r}; this function retrains {model_name!r}"
    return Trigger(
        kind,
        f"{parsed.detail_type} {parsed.id}",
        drift_psi=_drift_psi(parsed.detail),
        shift_since=_shift_since(parsed.detail),
    )


def _shift_since(detail: Any) -> datetime | None:
    value = detail.get("shift_since") if isinstance(detail, dict) else None
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _drift_psi(detail: Any) -> dict[str, float]:
    """The drifted features' PSI of a ``ModelDriftDetected`` detail (empty for other events)."""
    features = detail.get("drifted_features") if isinstance(detail, dict) else None
    if not isinstance(features, list):
        return {}
    return {
        f["name"]: float(f["psi"])
        for f in features
        if isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("psi"), int | float)
    }


@dataclass
class RetrainEnvironment:
    """One retrain execution environment: settings, clients, and the ports built from them once."""

    settings: RetrainSettings
    clients: AwsClients = field(default_factory=AwsClients)
    clock: Callable[[], datetime] = utc_now
    _ports: RetrainPorts | None = field(default=None, init=False, repr=False)

    @property
    def options(self) -> RetrainOptions:
        return RetrainOptions.from_settings(self.settings)

    def ports(self) -> RetrainPorts:
        """The adapters, built on first use (the rollout state and the lock live in the registry bucket)."""
        if self._ports is None:
            s, s3 = self.settings, self.clients.s3
            self._ports = RetrainPorts(
                registry=S3ModelRegistry(s3, s.registry_bucket),
                datasets=S3DatasetStore(s3, s.data_bucket),
                capture=S3CaptureReader(s3, s.data_bucket, s.capture_prefix),
                outcomes=S3OutcomeStore(s3, s.data_bucket, s.outcomes_prefix),
                lock=S3RetrainLock(s3, s.registry_bucket, s.lock_ttl_seconds, clock=self.clock),
                history=S3RetrainHistory(s3, s.registry_bucket),
                rollouts=S3RolloutStore(s3, s.registry_bucket),
                publisher=EventBridgePublisher(self.clients.events, s.event_bus_name, s.event_source),
                clock=self.clock,
            )
        return self._ports


class RetrainFunction:
    """The retrain function of one execution environment."""

    def __init__(self, env: RetrainEnvironment) -> None:
        self.env = env

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Parse the trigger, run one retrain, count and return its result (``RetrainResult.as_dict``)."""
        model_name = self.env.settings.model_name
        metrics.add_dimension(name="model_name", value=model_name)
        trigger = parse_trigger(event, model_name)
        if isinstance(trigger, str):
            logger.warning("retrain not started", extra={"reason": trigger})
            result = RetrainResult(status="skipped", model_name=model_name, trigger="none", reasons=[trigger])
        else:
            try:
                result = retrain(self.env.ports(), model_name, self.env.options, trigger, progress=logger.info)
            except Exception as exc:  # noqa: BLE001 - S3 failing around the lock is a failure too
                result = RetrainResult(
                    "failed", model_name, trigger.describe(), reasons=[describe_failure(exc)], error=exc
                )
        return report(result)


def report(result: RetrainResult) -> dict[str, Any]:
    """Log and count one retrain's outcome; return its result document."""
    if result.error is not None:
        logger.error("retrain failed", exc_info=result.error, extra={"reasons": result.reasons})
    if result.started:
        metrics.add_metric(name="RetrainStarted", unit="Count", value=1)
    metrics.add_metric(name=OUTCOME_METRIC[result.status], unit="Count", value=1)
    rows = result.training_rows
    skipped = rows.get("corrupt_capture_records_skipped", 0) + rows.get("corrupt_outcome_records_skipped", 0)
    if skipped:  # corrupt capture or outcome records the training data left out
        metrics.add_metric(name="RecordsSkipped", unit="Count", value=skipped)
    body = result.as_dict()
    logger.info("retrain finished", extra={"result": body})
    return body


def instrument(function: RetrainFunction) -> Handler:
    """The Lambda handler of one execution environment (see ``instrument_scheduled``)."""
    return instrument_scheduled(function.handle)


_default: Handler | None = None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _default  # noqa: PLW0603 - one handler per execution environment, created on first use
    if _default is None:
        _default = instrument(RetrainFunction(RetrainEnvironment(RetrainSettings.from_environment())))
    return _default(event, context)
