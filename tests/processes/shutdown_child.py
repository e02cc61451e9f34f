"""A predict execution environment that serves one request and then waits to be stopped.

``python -m tests.processes.shutdown_child EVENT`` imports the predict handler as Lambda's Init does
(``AWS_LAMBDA_RUNTIME_API`` in the environment), answers ``events/EVENT.json``, prints one JSON line
``{"status": ..., "request_id": ...}`` and sleeps: what it captured is still buffered until a SIGTERM.
"""

from __future__ import annotations

import io
import json
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

from tests.processes.serve_child import _Context

EVENTS = Path(__file__).resolve().parents[2] / "events"


def main() -> None:
    with redirect_stdout(io.StringIO()):
        from functions.handlers import predict

        event = json.loads((EVENTS / f"{sys.argv[1]}.json").read_text())
        response = predict.lambda_handler(event, _Context())
    body = json.loads(response["body"])
    print(json.dumps({"status": response["statusCode"], "request_id": body.get("request_id")}), flush=True)
    time.sleep(120)  # stopped by the test's SIGTERM long before this


if __name__ == "__main__":
    main()
