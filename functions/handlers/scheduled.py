"""What every EventBridge-invoked function wraps its handling in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.logging import correlation_paths

from functions.observability import logger, metrics

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def instrument_scheduled(handle: Handler) -> Handler:
    """Logging context (correlation id = the EventBridge event id) and one EMF flush per invocation.

    Args:
        handle: the function's ``handle(event, context)``.

    Returns:
        The Lambda handler.
    """

    @metrics.log_metrics
    @logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE)
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return handle(event, context)

    return handler
