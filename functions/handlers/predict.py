"""predict: POST /predict, GET /model, GET /health behind the API Gateway alias ``live``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.bootstrap import PredictEnvironment
from functions.errors import ModelUnavailableError
from functions.handlers.http import (
    failure,
    install_error_handlers,
    instrument_handler,
    json_response,
    proxy_response,
    read_body,
    request_id_of,
)
from functions.observability import logger, metrics
from functions.settings import PredictSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]


class PredictFunction:
    """The routes of one predict execution environment."""

    def __init__(self, env: PredictEnvironment) -> None:
        self.env = env
        self.app = APIGatewayRestResolver()
        install_error_handlers(self.app)
        self.app.get("/model")(self.model)
        self.app.get("/health")(self.health)

    def predict(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST /predict, served without the resolver: it is the hot path (see benchmarks/)."""
        request_id = request_id_of(event)
        settings = self.env.settings
        # Before loading: a canary whose model cannot load must still count its errors as its own.
        metrics.add_dimension(name="model_name", value=settings.model_name)
        if settings.model_version is not None:
            metrics.add_dimension(name="model_version", value=str(settings.model_version))
        try:
            service = self.env.service()
            body = read_body(event, self.env.settings.max_body_bytes)
            metrics.add_dimension(name="model_version", value=str(service.model_version))
            result = service.predict(body, request_id)
        except Exception as exc:  # noqa: BLE001 - failure() maps every error, in one place
            return proxy_response(*failure(exc, request_id))
        stats = result.stats
        metrics.add_metric(name="Predictions", unit="Count", value=1)
        metrics.add_metric(name="PredictedRows", unit="Count", value=stats.rows)
        metrics.add_metric(name="OutOfRangeValues", unit="Count", value=stats.out_of_range)
        metrics.add_metric(name="PredictLatency", unit="Milliseconds", value=stats.latency_ms)
        capture = self.env.capture
        if capture is not None:
            failures = capture.take_new_failures()
            if failures:
                metrics.add_metric(name="CaptureFailures", unit="Count", value=failures)
            capture.flush_if_due()
        return proxy_response(200, result.body)

    def model(self) -> Response[str]:
        service = self.env.service()
        metrics.add_metric(name="ModelCardRequests", unit="Count", value=1)
        return json_response(200, service.loaded.card.summary())

    def health(self) -> Response[str]:
        metrics.add_metric(name="HealthChecks", unit="Count", value=1)
        try:
            service = self.env.service()
        except Exception as exc:  # noqa: BLE001 - health answers, whatever went wrong
            reason = exc.message if isinstance(exc, ModelUnavailableError) else "model not loaded"
            return json_response(
                503, {"status": "unavailable", "model_name": self.env.settings.model_name, "reason": reason}
            )
        card = service.loaded.card
        return json_response(
            200,
            {
                "status": "ok",
                "model_name": card.name,
                "model_version": card.version,
                "pinned": self.env.settings.model_version is not None,
                "artifact_sha256": card.artifact_sha256,
            },
        )

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if event.get("httpMethod") == "POST" and event.get("path") == "/predict":
            return self.predict(event)
        return self.app.resolve(event, context)


def instrument(function: PredictFunction) -> Handler:
    """Wrap an environment's routes in logging context and the EMF metrics flush, as Lambda runs them."""
    return instrument_handler(function.handle)


_default: tuple[PredictFunction, Handler] | None = None


def _default_function() -> tuple[PredictFunction, Handler]:
    global _default  # noqa: PLW0603 - one handler per execution environment, created on first use
    if _default is None:
        function = PredictFunction(PredictEnvironment(PredictSettings()))
        _default = (function, instrument(function))
    return _default


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _default_function()[1](event, context)


if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # On Lambda, load the model during the init phase (CPU boost, not billed to the first
    # request). A failure is logged and retried on the first request.
    try:
        _default_function()[0].env.service()
    except Exception:  # noqa: BLE001
        logger.exception("model load at init failed; retrying on first request")
