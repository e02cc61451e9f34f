"""drift-check: on its EventBridge schedule (or an operator's invoke), check the serving model's recent traffic."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from functions.adapters.aggregates import S3AggregateStore
from functions.adapters.capture_reader import S3CaptureReader
from functions.adapters.events import EventBridgePublisher
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.reports import EmfMetricSink, S3ReportStore
from functions.bootstrap import AwsClients
from functions.domain.drift import DriftPolicy
from functions.errors import FieldError, ValidationError
from functions.handlers.scheduled import instrument_scheduled
from functions.observability import metrics
from functions.services.drift_check import Window, check_drift
from functions.services.drift_hours import aggregate_recent
from functions.settings import DriftCheckSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class DriftCheckRequest(BaseModel):
    """What to check; every field optional. Naive times are UTC."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["check", "aggregate"] = Field(
        default="check",
        description="check: the window's drift; aggregate: bring the recent hours' drift aggregates up to date.",
    )
    window_hours: float | None = Field(default=None, gt=0, description="Window length; the settings' when absent.")
    start: datetime | None = Field(default=None, description="Window start; ``end - window_hours`` when absent.")
    end: datetime | None = Field(default=None, description="Window end; now when absent.")
    model_version: int | None = Field(default=None, ge=1, description="Check this version, not the alias's.")

    def window(self, default_hours: float, now: datetime) -> Window:
        """The window to check: ``start``-``end`` when given, else the hours (asked, or default) before the end.

        Args:
            default_hours: the settings' window length.
            now: the time of the check, the default end.

        Returns:
            The window. Raises ``ValidationError`` when ``start`` is not before the end.
        """
        end = _utc(self.end) if self.end else now
        if self.start is None:
            return Window.last(self.window_hours or default_hours, end)
        if _utc(self.start) >= end:
            raise ValidationError("invalid drift-check event", [FieldError("start", "must be before end")])
        return Window(_utc(self.start), end)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class DriftCheckEvent(EventBridgeModel):
    """The scheduled event (``detail`` is ``{}``) or any EventBridge event whose detail is a request."""

    detail: DriftCheckRequest


def _event_kind(event: Any) -> str:
    return "eventbridge" if isinstance(event, dict) and "detail-type" in event else "request"


_EVENT: TypeAdapter[DriftCheckEvent | DriftCheckRequest] = TypeAdapter(
    Annotated[
        Annotated[DriftCheckEvent, Tag("eventbridge")] | Annotated[DriftCheckRequest, Tag("request")],
        Discriminator(_event_kind),
    ]
)


def parse_event(event: dict[str, Any]) -> DriftCheckRequest:
    """An EventBridge event carrying a request in ``detail``, or a bare request from an operator.

    Args:
        event: the invocation's event.

    Returns:
        The request (all defaults for the scheduled event, whose detail is ``{}``).

    Raises:
        ValidationError: naming each bad field.
    """
    try:
        parsed = _EVENT.validate_python(event)
    except PydanticValidationError as exc:
        errors = [FieldError(".".join(str(p) for p in e["loc"][1:]) or "event", e["msg"]) for e in exc.errors()]
        raise ValidationError("invalid drift-check event", errors[:20]) from exc
    return parsed.detail if isinstance(parsed, DriftCheckEvent) else parsed


class DriftCheckEnvironment:
    """One drift-check execution environment: settings, clients and the adapters over them."""

    def __init__(
        self, settings: DriftCheckSettings, clients: AwsClients, clock: Callable[[], datetime] | None = None
    ) -> None:
        """Build the adapters once per execution environment.

        Args:
            settings: the function's settings.
            clients: the boto3 clients (S3, EventBridge), created on first use.
            clock: the current time; UTC now when None.
        """
        s = settings
        self.settings = settings
        self.clock = clock or (lambda: datetime.now(UTC))
        self.registry = S3ModelRegistry(clients.s3, s.registry_bucket)
        self.captures = S3CaptureReader(clients.s3, s.data_bucket, s.capture_prefix)
        self.outcomes = S3OutcomeStore(clients.s3, s.data_bucket, s.outcomes_prefix)
        self.publisher = EventBridgePublisher(clients.events, s.event_bus_name, s.event_source)
        self.reports = S3ReportStore(clients.s3, s.data_bucket, s.reports_prefix)
        self.aggregates = S3AggregateStore(clients.s3, s.data_bucket, s.aggregates_prefix)
        self.metrics = EmfMetricSink(metrics)
        self.policy = DriftPolicy(
            psi_warning=s.psi_warning,
            psi_drift=s.psi_drift,
            p_value_alpha=s.p_value_alpha,
            correction=s.correction,
            min_rows=s.min_rows,
            performance_tolerance=s.performance_tolerance,
            prediction_psi_drift=s.prediction_psi_drift,
        )


class DriftCheckFunction:
    """The drift-check function of one execution environment."""

    def __init__(self, env: DriftCheckEnvironment) -> None:
        self.env = env

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        """Check the serving model's window, or (``"action": "aggregate"``) update the recent hours' aggregates.

        Args:
            event: the scheduled event, an EventBridge event with a request, or an operator's request.
            context: the Lambda context.

        Returns:
            ``DriftCheckResult.as_dict()``: verdict, drifted, performance, report keys, events published;
            for ``aggregate``, what :func:`aggregate_recent` did per hour.
        """
        request = parse_event(event)
        env, s = self.env, self.env.settings
        now = env.clock()
        if request.action == "aggregate":
            given = [
                name for name in ("window_hours", "start", "end", "model_version") if name in request.model_fields_set
            ]
            if given:
                raise ValidationError(
                    "invalid drift-check event",
                    [FieldError(name, "only a check takes it, not action aggregate") for name in given],
                )
            return aggregate_recent(
                registry=env.registry,
                captures=env.captures,
                aggregates=env.aggregates,
                model_name=s.model_name,
                now=now,
                sample_size=s.sample_size,
                hours=s.aggregate_hours,
            )
        result = check_drift(
            registry=env.registry,
            captures=env.captures,
            outcomes=env.outcomes,
            publisher=env.publisher,
            reports=env.reports,
            metrics=env.metrics,
            model_name=s.model_name,
            alias=s.model_alias,
            model_version=request.model_version,
            policy=env.policy,
            window=request.window(s.window_hours, now),
            now=now,
            sample_size=s.sample_size,
            aggregates=env.aggregates,
        )
        return result.as_dict()


def instrument(function: DriftCheckFunction) -> Handler:
    """The Lambda handler of one execution environment (see ``instrument_scheduled``)."""
    return instrument_scheduled(function.handle)


_default: Handler | None = None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The entry point; builds the environment from ``DriftCheckSettings`` on first use."""
    global _default  # noqa: PLW0603 - one handler per execution environment, created on first use
    if _default is None:
        environment = DriftCheckEnvironment(DriftCheckSettings.from_environment(), AwsClients())
        _default = instrument(DriftCheckFunction(environment))
    return _default(event, context)
