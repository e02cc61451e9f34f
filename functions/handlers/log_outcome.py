"""log-outcome: POST /outcomes records ground truth for earlier request ids."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.bootstrap import OutcomeEnvironment
from functions.handlers.http import install_error_handlers, instrument_handler, json_response, read_body, request_id_of
from functions.observability import metrics
from functions.services.outcomes import record_outcomes
from functions.settings import LogOutcomeSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class LogOutcomeFunction:
    """The routes of one log-outcome execution environment."""

    def __init__(self, env: OutcomeEnvironment) -> None:
        self.env = env
        self.app = APIGatewayRestResolver()
        install_error_handlers(self.app)
        self.app.post("/outcomes")(self.outcomes)

    def outcomes(self) -> Response[str]:
        card = self.env.card()
        event = self.app.current_event.raw_event
        body = read_body(event, self.env.settings.max_body_bytes)
        result = record_outcomes(body, card, self.env.store, self.env.settings.max_outcomes)
        metrics.add_metric(name="OutcomesAccepted", unit="Count", value=result.accepted)
        return json_response(
            200,
            {
                "accepted": result.accepted,
                "duplicate_batch": not result.newly_stored,
                "model_name": card.name,
                "request_id": request_id_of(event),
            },
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return self.app.resolve(event, context)


def instrument(function: LogOutcomeFunction) -> Handler:
    return instrument_handler(function.handle)


_default: Handler | None = None


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    global _default  # noqa: PLW0603 - one handler per execution environment, created on first use
    if _default is None:
        _default = instrument(LogOutcomeFunction(OutcomeEnvironment(LogOutcomeSettings.from_environment())))
    return _default(event, context)
