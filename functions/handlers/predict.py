"""predict: POST /predict, GET /model, GET /health and GET /openapi.json behind the API Gateway alias ``live``."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pydantic_core
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions import shutdown
from functions.bootstrap import PredictEnvironment
from functions.errors import ModelUnavailableError
from functions.handlers.http import (
    failure,
    install_error_handlers,
    instrument_handler,
    proxy_response,
    read_body,
    request_id_of,
)
from functions.observability import MetricLine, logger, metrics
from functions.routes import routes_of
from functions.settings import PredictSettings

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]
# What every successful prediction reports, in this order (CaptureFailures is counted by the capture writer).
PREDICT_METRICS = {
    "Predictions": "Count",
    "PredictedRows": "Count",
    "OutOfRangeValues": "Count",
    "PredictLatency": "Milliseconds",
}


class PredictFunction:
    """The routes of one predict execution environment."""

    def __init__(self, env: PredictEnvironment) -> None:
        self.env = env
        self._app: Any = None
        self._routes: dict[tuple[str, str], Callable[[], tuple[int, Any]]] = {
            ("GET", "/model"): self.model,
            ("GET", "/health"): self.health,
            ("GET", "/openapi.json"): self.openapi,
        }
        served = {("POST", "/predict"), *self._routes}
        assert served == {route.key for route in routes_of("predict")}, "predict serves its routes in ROUTES"
        self._openapi: tuple[int, bytes] | None = None
        self._lines: dict[tuple[str, int], MetricLine] = {}

    def predict(self, event: dict[str, Any]) -> dict[str, Any]:
        """POST /predict, served without the resolver: it is the hot path (see benchmarks/).

        A success emits its metrics as one prepared EMF line (``MetricLine``); an error goes through
        Powertools' metrics (flushed by ``instrument``), with the same dimensions.
        """
        request_id = request_id_of(event)
        service = None
        try:
            service = self.env.service()
            body = read_body(event, self.env.settings.max_body_bytes)
            result = service.predict(body, request_id)
        except Exception as exc:  # noqa: BLE001 - failure() maps every error, in one place
            # A canary whose model cannot load must still count its errors as its own version's.
            version = service.model_version if service is not None else self.env.settings.pinned_version
            metrics.add_dimension(name="model_name", value=self.env.settings.model_name)
            if version is not None:
                metrics.add_dimension(name="model_version", value=str(version))
            return proxy_response(*failure(exc, request_id))
        stats = result.stats
        values = [1.0, stats.rows, stats.out_of_range, stats.latency_ms]
        capture = self.env.capture
        self._metric_line(service.model_version).emit(values)
        if capture is not None:  # last: nothing after this waits for the GIL the writer thread now wants
            if result.capture is not None:
                capture.add(result.capture)
            capture.flush_if_due()
        return proxy_response(200, result.body)

    def _metric_line(self, version: int) -> MetricLine:
        key = (metrics.namespace or "", version)
        line = self._lines.get(key)
        if line is None:
            units = dict(PREDICT_METRICS)
            dimensions = {"model_name": self.env.settings.model_name, "model_version": str(version)}
            line = self._lines[key] = MetricLine(key[0], dimensions, units)
        return line

    def model(self) -> tuple[int, Any]:
        """GET /model: the card's public summary."""
        service = self.env.service()
        metrics.add_metric(name="ModelCardRequests", unit="Count", value=1)
        return 200, service.loaded.card.summary()

    def openapi(self) -> tuple[int, Any]:
        """GET /openapi.json: the API's contract for the serving model (made once per environment)."""
        from functions.domain.openapi import openapi_document  # off the cold start: few environments are asked

        service = self.env.service()
        metrics.add_metric(name="ContractRequests", unit="Count", value=1)
        card = service.loaded.card
        if self._openapi is None or self._openapi[0] != card.version:
            document = openapi_document(card, max_rows=self.env.settings.max_batch_rows)
            self._openapi = (card.version, pydantic_core.to_json(document))
        return 200, self._openapi[1]

    def health(self) -> tuple[int, Any]:
        """GET /health: 200 only when the model is loaded and answered its canned prediction."""
        metrics.add_metric(name="HealthChecks", unit="Count", value=1)
        try:
            service = self.env.service()
        except Exception as exc:  # noqa: BLE001 - health answers, whatever went wrong
            reason = exc.message if isinstance(exc, ModelUnavailableError) else "model not loaded"
            return 503, {"status": "unavailable", "model_name": self.env.settings.model_name, "reason": reason}
        card = service.loaded.card
        return (
            200,
            {
                "status": "ok",
                "model_name": card.name,
                "model_version": card.version,
                "pinned": self.env.settings.pinned_version is not None,
                "artifact_sha256": card.artifact_sha256,
            },
        )

    @property
    def app(self) -> Any:
        """The Powertools resolver, for what the routes above do not serve (404, 405): imported on first use.

        Importing ``aws_lambda_powertools.event_handler`` costs a cold start about 70 ms, and the
        three routes predict serves need none of it.
        """
        if self._app is None:
            from aws_lambda_powertools.event_handler import APIGatewayRestResolver

            self._app = APIGatewayRestResolver()
            install_error_handlers(self._app)
        return self._app

    def handle(self, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        method, path = event.get("httpMethod"), event.get("path")
        if method == "POST" and path == "/predict":
            return self.predict(event)
        route = self._routes.get((str(method), str(path)))
        if route is None:
            return dict(self.app.resolve(event, context))
        try:
            return proxy_response(*route())
        except Exception as exc:  # noqa: BLE001 - failure() maps every error, in one place
            return proxy_response(*failure(exc, request_id_of(event)))


def instrument(function: PredictFunction) -> Handler:
    """Wrap an environment's routes in logging context and the EMF metrics flush, as Lambda runs them.

    A successful POST /predict has emitted its own metric line; everything else (errors included)
    leaves its metrics with Powertools, flushed once per invocation.
    """
    flushed = instrument_handler(function.handle)
    context_only = instrument_handler(lambda event, _context: function.predict(event), flush_metrics=False)

    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        if event.get("httpMethod") != "POST" or event.get("path") != "/predict":
            return flushed(event, context)
        response = context_only(event, context)
        if response["statusCode"] != 200:
            metrics.flush_metrics()
        return response

    return handler


_default: tuple[PredictFunction, Handler] | None = None


def _default_function() -> tuple[PredictFunction, Handler]:
    global _default  # noqa: PLW0603 - one handler per execution environment, created on first use
    if _default is None:
        function = PredictFunction(PredictEnvironment(PredictSettings.from_environment()))
        _default = (function, instrument(function))
    return _default


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return _default_function()[1](event, context)


if os.environ.get("AWS_LAMBDA_RUNTIME_API"):
    # On Lambda, in the Init phase (internal extensions register before the runtime's first Next):
    # SIGTERM at shutdown writes the capture still buffered (functions/shutdown.py).
    shutdown.enable()

if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # On Lambda, load the model during the init phase (CPU boost, not billed to the first
    # request). A failure is logged and retried on the first request.
    try:
        _default_function()[0].env.service()
    except Exception:  # noqa: BLE001
        logger.exception("model load at init failed; retrying on first request")
