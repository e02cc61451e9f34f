"""HTTP plumbing shared by the API functions: the one mapping from exceptions to responses."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import pydantic_core

from functions.errors import (
    RETRY_AFTER_SECONDS,
    FieldError,
    MethodNotAllowedError,
    MlopsError,
    PayloadTooLargeError,
    RouteNotFoundError,
    UnsupportedMediaTypeError,
    ValidationError,
    error_body,
    http_status_for,
)
from functions.observability import bind_invocation, logger, metrics
from functions.routes import methods_on

if TYPE_CHECKING:  # imported where a resolver is built: the event handler package is slow to import
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

JSON = "application/json"


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes) else pydantic_core.to_json(body).decode()


def _extra_headers(status: int) -> dict[str, str]:
    """``Retry-After`` on every 503 (a model not loaded yet, storage unavailable): when to try again."""
    return {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else {}


def json_response(status: int, body: Any) -> Response[str]:
    """A resolver response with a JSON body (``bytes`` are taken as already-serialised JSON)."""
    from aws_lambda_powertools.event_handler import Response

    return Response(status_code=status, content_type=JSON, body=_text(body), headers=_extra_headers(status) or None)


def proxy_response(status: int, body: Any) -> dict[str, Any]:
    """The API Gateway proxy response itself, for routes served without the resolver."""
    headers = {"Content-Type": JSON, **_extra_headers(status)}
    return {"statusCode": status, "headers": headers, "body": _text(body), "isBase64Encoded": False}


def request_id_of(event: Mapping[str, Any]) -> str:
    return str((event.get("requestContext") or {}).get("requestId") or "")


def failure(exc: Exception, request_id: str) -> tuple[int, dict[str, Any]]:
    """Status and body for any exception: logged and counted; a 5xx says nothing internal."""
    if not isinstance(exc, MlopsError):
        logger.exception("unhandled error")
        metrics.add_metric(name="Errors", unit="Count", value=1)
        return 500, error_body(MlopsError("internal error"), request_id)
    status = http_status_for(exc)
    if status >= 500:
        logger.error("request failed", extra={"error_code": exc.code, "error": exc.message})
        metrics.add_metric(name="Errors", unit="Count", value=1)
    else:
        logger.info("request rejected", extra={"status": status, "error_code": exc.code})
        metrics.add_metric(name="RejectedRequests", unit="Count", value=1)
    return status, error_body(exc, request_id)


def install_error_handlers(app: APIGatewayRestResolver) -> None:
    """Route every exception the resolver sees through ``failure``, and unknown routes to a 404."""

    @app.exception_handler(Exception)
    def _any(exc: Exception) -> Response[str]:
        return json_response(*failure(exc, request_id_of(app.current_event.raw_event)))

    @app.not_found
    def _not_found(exc: Exception) -> Response[str]:
        event = app.current_event
        methods = methods_on(event.path)  # a wrong method (405) or an unknown path (404)
        if methods:
            error: MlopsError = MethodNotAllowedError(
                f"{event.http_method} is not allowed on {event.path}",
                [FieldError("method", f"use {', '.join(methods)}")],
            )
        else:
            error = RouteNotFoundError(
                f"no route {event.http_method} {event.path}", [FieldError("path", "unknown path")]
            )
        return json_response(http_status_for(error), error_body(error, request_id_of(event.raw_event)))


def read_body(event: Mapping[str, Any], max_bytes: int) -> str:
    """The request body of a proxy event, after checking its media type and size (base64 is decoded)."""
    headers = event.get("headers") or {}
    content_type = headers.get("Content-Type") or headers.get("content-type")
    if content_type is None:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != JSON and not media.endswith("+json"):
            raise UnsupportedMediaTypeError(
                f"unsupported media type {media!r}", [FieldError("Content-Type", "must be application/json")]
            )
    body: str = event.get("body") or ""
    too_large = PayloadTooLargeError("request body too large", [FieldError("body", f"at most {max_bytes} bytes")])
    if event.get("isBase64Encoded"):
        if len(body) > max_bytes * 4 // 3 + 4:
            raise too_large
        try:
            raw = base64.b64decode(body, validate=True)
            body = raw.decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ValidationError("invalid request", [FieldError("body", "must be base64 of UTF-8 JSON text")]) from exc
        if len(raw) > max_bytes:
            raise too_large
        return body
    # A character is at least one byte; only non-ASCII text needs encoding to be measured.
    if len(body) > max_bytes or (not body.isascii() and len(body.encode("utf-8")) > max_bytes):
        raise too_large
    return body


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def instrument_handler(handle: Handler, *, flush_metrics: bool = True) -> Handler:
    """Logging context (function identity; correlation id = API Gateway request id) and, unless told
    not to, one EMF flush per invocation.

    Cheaper than ``logger.inject_lambda_context`` (which runs a JMESPath query per request), and
    the keys are this invocation's own (``bind_invocation``).
    """

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bind_invocation(context, request_id_of(event))
        return handle(event, context)

    return metrics.log_metrics(handler) if flush_metrics else handler
