"""What every EventBridge-invoked function wraps its handling in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.observability import bind_invocation, metrics

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def instrument_scheduled(handle: Handler) -> Handler:
    """Logging context (correlation id = the EventBridge event id) and one EMF flush per invocation.

    Args:
        handle: the function's ``handle(event, context)``.

    Returns:
        The Lambda handler.
    """

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        bind_invocation(context, str(event.get("id") or ""))
        return handle(event, context)

    return metrics.log_metrics(handler)
