"""Logger, Metrics and Tracer, set up in one place for every function."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

from functions.config import METRICS_NAMESPACE


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at write time (the local runtime redirects it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


logger = Logger(
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", "mlops"), logger_handler=logging.StreamHandler(_CurrentStdout())
)
# The keys that say which function (and environment) wrote a log line.
IDENTITY_KEYS = ("function_name", "function_memory_size", "function_arn")


def bind_invocation(context: Any, correlation_id: str | None) -> None:
    """Say on this thread's log lines which function, environment and request they come from.

    The keys live in Powertools' context-local keys, not in the shared logger's, so functions running
    at once in one process (the local runtime) never write each other's names or request ids.
    """
    logger.thread_safe_clear_keys()
    logger.thread_safe_append_keys(
        function_name=context.function_name,
        function_memory_size=context.memory_limit_in_mb,
        function_arn=context.invoked_function_arn,
        function_request_id=context.aws_request_id,
        correlation_id=correlation_id,
    )


def identity_keys() -> dict[str, Any]:
    """This thread's function identity, for log lines written on another thread on its behalf.

    Outside an invocation (Lambda's Init phase, where the model and its capture writer are made)
    the function's name and memory come from Lambda's environment variables.
    """
    keys = {k: v for k, v in logger.thread_safe_get_current_keys().items() if k in IDENTITY_KEYS}
    if not keys and os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        keys = {
            "function_name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
            "function_memory_size": os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
        }
    return keys


def isolated_metrics(namespace: str | None = None) -> Metrics:
    """A Metrics with buffers of its own.

    Powertools keeps the metrics, dimensions and metadata of every ``Metrics()`` in class state, so
    two instances share one buffer; one with its own provider does not. No "service" dimension (an
    empty service turns Powertools' default one off): metrics are identified by model_name and
    model_version, so the rollout controller and the alarms find the same series on Lambda and in
    the local runtime.
    """
    namespace = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE)
    provider = AmazonCloudWatchEMFProvider(
        metric_set={}, dimension_set={}, metadata_set={}, default_dimensions={}, namespace=namespace, service=""
    )
    return Metrics(provider=provider)


_bound_metrics: ContextVar[Metrics | None] = ContextVar("mlops_bound_metrics", default=None)


class EnvironmentMetrics:
    """The ``metrics`` every function uses: the Metrics of the execution environment running on this thread.

    On Lambda a process is one environment and this is simply its Metrics. The local runtime hosts
    every function in one process and runs them at once, each environment with its own
    ``isolated_metrics`` bound to the invoking thread (``bound``), so a drift-check's metrics never
    land in a concurrent predict's flush.
    """

    def __init__(self, default: Metrics) -> None:
        self._default = default

    def current(self) -> Metrics:
        return _bound_metrics.get() or self._default

    @property
    def namespace(self) -> str | None:
        return self.current().namespace

    @namespace.setter
    def namespace(self, namespace: str | None) -> None:
        self.current().namespace = namespace

    def add_metric(self, name: str, unit: MetricUnit | str, value: float) -> None:
        self.current().add_metric(name=name, unit=unit, value=value)

    def add_dimension(self, name: str, value: str) -> None:
        self.current().add_dimension(name=name, value=value)

    def flush_metrics(self) -> None:
        self.current().flush_metrics()

    def clear_metrics(self) -> None:
        self.current().clear_metrics()

    def log_metrics(self, handler: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        """Flush the invoking environment's metrics after every call of ``handler`` (as Powertools' decorator)."""

        def flushed(event: Any, context: Any) -> Any:
            try:
                return handler(event, context)
            finally:
                self.flush_metrics()

        return flushed


@contextmanager
def bound(environment_metrics: Metrics) -> Iterator[None]:
    """Make ``environment_metrics`` what ``metrics`` means on this thread until the block ends."""
    token = _bound_metrics.set(environment_metrics)
    try:
        yield
    finally:
        _bound_metrics.reset(token)


metrics = EnvironmentMetrics(isolated_metrics())
_tracer: Any = None


def tracing_enabled() -> bool:
    """X-Ray tracing runs on Lambda only (and not when POWERTOOLS_TRACE_DISABLED is true)."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").lower() in ("1", "true")
    return bool(os.environ.get("LAMBDA_TASK_ROOT")) and not disabled


@contextmanager
def traced(name: str) -> Iterator[None]:
    """An X-Ray subsegment around cold-start work. The Tracer (and the X-Ray SDK, ~0.1-0.3 s to
    import) is created on first use and only where tracing runs, to keep cold starts short."""
    global _tracer  # noqa: PLW0603 - one tracer per execution environment, created on first use
    if not tracing_enabled():
        yield
        return
    if _tracer is None:
        from aws_lambda_powertools import Tracer

        _tracer = Tracer()
    with _tracer.provider.in_subsegment(f"## {name}"):
        yield


class MetricLine:
    """One EMF document with fixed dimensions and metric names, formatted from a template per call.

    The predict hot path emits the same four or five metrics on every request; building them
    through Powertools (validation per metric, a dict per flush, ``json.dumps``) cost more than the
    model itself. The line is exactly what ``Metrics.flush_metrics`` prints for the same metrics
    (one value each), so CloudWatch, the alarms and the local runtime read it alike.
    """

    def __init__(self, namespace: str, dimensions: dict[str, str], units: dict[str, str]) -> None:
        definition = {
            "Namespace": namespace,
            "Dimensions": [list(dimensions)],
            "Metrics": [{"Name": name, "Unit": unit} for name, unit in units.items()],
        }
        self._head = '{"_aws":{"Timestamp":'
        self._middle = (
            ',"CloudWatchMetrics":['
            + json.dumps(definition, separators=(",", ":"))
            + "]},"
            + json.dumps(dimensions, separators=(",", ":"))[1:-1]
        )
        self._names = [json.dumps(name) for name in units]

    def format(self, values: list[float], timestamp_ms: int) -> str:
        """The document for ``values`` (one per metric, in the order given at construction)."""
        fields = "".join(f",{name}:[{float(v)!r}]" for name, v in zip(self._names, values, strict=True))
        return f"{self._head}{timestamp_ms}{self._middle}{fields}}}"

    def emit(self, values: list[float]) -> None:
        print(self.format(values, int(time.time() * 1000)))
