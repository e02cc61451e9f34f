"""Logger, Metrics and Tracer, set up in one place for every function."""

from __future__ import annotations

import logging
import os
import sys

from aws_lambda_powertools import Logger, Metrics, Tracer

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
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE))
tracer = Tracer()
