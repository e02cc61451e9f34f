"""A fresh predict (or log-outcome) process: serve events from ``events/`` and report what it imported.

``python -m tests.processes.serve_child <function> <event> [<event> ...]`` prints one JSON line:
``{"statuses": [...], "bodies": [...], "forbidden": [...]}`` where ``forbidden`` lists the
training-side modules found in ``sys.modules`` after serving. Settings and the S3 endpoint come
from the environment, as on Lambda.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

FORBIDDEN = ("sklearn", "scipy", "joblib", "skops", "pandas", "skl2onnx", "onnx")
EVENTS = Path(__file__).resolve().parents[2] / "events"


class _Context:
    function_name = "mlops-local-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/mlops-local-predict"
    log_stream_name = "fresh"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlops-local-predict:live"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def forbidden_modules() -> list[str]:
    """Training-side top-level packages this process has imported (``onnx`` itself, not ``onnxruntime``)."""
    return sorted({name.split(".")[0] for name in sys.modules if name.split(".")[0] in FORBIDDEN})


def main() -> None:
    function, *events = sys.argv[1:]
    module = importlib.import_module(f"functions.handlers.{function}")
    statuses: list[int] = []
    bodies: list[Any] = []
    with redirect_stdout(io.StringIO()):  # EMF and logs; the report is the one line below
        for name in events:
            event = json.loads((EVENTS / f"{name}.json").read_text())
            response = module.lambda_handler(event, _Context())
            statuses.append(response["statusCode"])
            bodies.append(json.loads(response["body"]))
        default = getattr(module, "_default", None)
        capture = getattr(getattr(default[0], "env", None), "capture", None) if isinstance(default, tuple) else None
        if capture is not None:
            capture.flush()
    print(json.dumps({"statuses": statuses, "bodies": bodies, "forbidden": forbidden_modules()}), flush=True)


if __name__ == "__main__":
    main()
