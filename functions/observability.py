"""Logger, Metrics and Tracer, set up in one place for every function."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics

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
# No "service" dimension (an empty service turns Powertools' default one off): metrics are identified by
# model_name and model_version, so the rollout controller and the alarms find the same series on Lambda
# and in the local runtime, where every function shares one process.
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE), service="")
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
