"""Sample events from ``events/``, and small helpers to vary them and read responses."""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """The event ``events/<name>.json`` as a fresh dict (safe to modify)."""
    return json.loads((EVENTS_DIR / f"{name}.json").read_text())


def event_body(event: dict[str, Any]) -> Any:
    """The decoded JSON body of an API Gateway event."""
    return json.loads(event["body"])


def with_body(name: str, body: Any, *, raw: bool = False, **changes: Any) -> dict[str, Any]:
    """Event ``name`` with its body replaced by ``body`` (JSON-encoded unless ``raw``) and top-level ``changes``."""
    event = copy.deepcopy(load_event(name))
    event["body"] = body if raw else json.dumps(body)
    event.update(changes)
    return event


def with_base64_body(name: str, data: bytes) -> dict[str, Any]:
    """Event ``name`` carrying ``data`` base64-encoded, as API Gateway sends binary bodies."""
    return with_body(name, base64.b64encode(data).decode(), raw=True, isBase64Encoded=True)


def with_headers(event: dict[str, Any], **headers: str) -> dict[str, Any]:
    """``event`` with headers set in both ``headers`` and ``multiValueHeaders``."""
    for name, value in headers.items():
        header = name.replace("_", "-")
        event["headers"][header] = value
        event["multiValueHeaders"][header] = [value]
    return event


def route(name: str, method: str, path: str) -> dict[str, Any]:
    """Event ``name`` sent to another method and path."""
    event = load_event(name)
    event["httpMethod"] = event["requestContext"]["httpMethod"] = method
    event["path"] = event["resource"] = event["requestContext"]["resourcePath"] = path
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    return event


def request_id(event: dict[str, Any]) -> str:
    return str(event["requestContext"]["requestId"])


def response_json(response: dict[str, Any]) -> Any:
    """The JSON body of a Lambda proxy response (after checking it is JSON)."""
    single = response.get("headers") or {}
    multi = response.get("multiValueHeaders") or {}
    assert single.get("Content-Type", multi.get("Content-Type", [None])[0]) == "application/json"
    return json.loads(response["body"])
