"""HTTP plumbing shared by the API functions: the one mapping from exceptions to responses."""

from __future__ import annotations

from typing import Any

import pydantic_core
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response

from functions.errors import (
    FieldError,
    MlopsError,
    PayloadTooLargeError,
    RouteNotFoundError,
    UnsupportedMediaTypeError,
    ValidationError,
    error_body,
    http_status_for,
)
from functions.observability import logger, metrics

JSON = "application/json"


def json_response(status: int, body: Any) -> Response[str]:
    payload = body.decode() if isinstance(body, bytes) else pydantic_core.to_json(body).decode()
    return Response(status_code=status, content_type=JSON, body=payload)


def request_id_of(app: APIGatewayRestResolver) -> str:
    return str(app.current_event.request_context.request_id or "")


def install_error_handlers(app: APIGatewayRestResolver) -> None:
    """Map every exception to a response with the stable error body; 5xx never leak internals."""

    @app.exception_handler(MlopsError)
    def _known(exc: MlopsError) -> Response[str]:
        status = http_status_for(exc)
        if status >= 500:
            logger.error("request failed", extra={"error_code": exc.code, "error": exc.message})
            metrics.add_metric(name="Errors", unit="Count", value=1)
        else:
            logger.info("request rejected", extra={"status": status, "error_code": exc.code})
            metrics.add_metric(name="RejectedRequests", unit="Count", value=1)
        return json_response(status, error_body(exc, request_id_of(app)))

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response[str]:
        logger.exception("unhandled error")
        metrics.add_metric(name="Errors", unit="Count", value=1)
        return json_response(500, error_body(MlopsError("internal error"), request_id_of(app)))

    @app.not_found
    def _not_found(exc: Exception) -> Response[str]:
        event = app.current_event
        error = RouteNotFoundError(
            f"no route {event.http_method} {event.path}", [FieldError("path", "unknown path or method")]
        )
        return json_response(404, error_body(error, request_id_of(app)))


def read_body(app: APIGatewayRestResolver, max_bytes: int) -> str:
    """The request body, after checking its media type and size (base64 bodies are decoded)."""
    event = app.current_event
    headers = event.headers or {}
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    if content_type is not None:
        media = content_type.split(";", 1)[0].strip().lower()
        if media != JSON and not media.endswith("+json"):
            raise UnsupportedMediaTypeError(
                f"unsupported media type {media!r}", [FieldError("Content-Type", "must be application/json")]
            )
    raw = event.body or ""
    if len(raw) > max_bytes * (4 / 3 if event.is_base64_encoded else 1) + 4:
        raise PayloadTooLargeError(
            "request body too large", [FieldError("body", f"at most {max_bytes} bytes, got {len(raw)}")]
        )
    if event.is_base64_encoded:
        try:
            body = event.decoded_body or ""
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError("invalid request", [FieldError("body", "must be UTF-8 JSON text")]) from exc
    else:
        body = raw
    if len(body) > max_bytes:
        raise PayloadTooLargeError(
            "request body too large", [FieldError("body", f"at most {max_bytes} bytes, got {len(body)}")]
        )
    return body
