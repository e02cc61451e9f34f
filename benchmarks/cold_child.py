"""One cold start in a fresh process: the predict handler's first request, or the bare import-and-load baseline."""

from __future__ import annotations

import time

T0 = time.perf_counter()  # before any import this process makes on its own behalf

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402


class _Context:
    function_name = "mlops-local-predict"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/mlops-local-predict"
    log_stream_name = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:mlops-local-predict:live"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000.0


def handler(event_file: str) -> dict[str, Any]:
    """Import the handler module, then serve one request through ``lambda_handler`` (which loads the model)."""
    from functions.handlers import predict

    imported = time.perf_counter()
    with open(event_file) as fh:
        event = json.load(fh)
    real_stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # EMF and logs go nowhere
    try:
        response = predict.lambda_handler(event, _Context())  # type: ignore[arg-type]
    finally:
        sys.stdout.close()
        sys.stdout = real_stdout
    done = time.perf_counter()
    return {
        "status": response["statusCode"],
        "import_ms": (imported - T0) * 1000.0,
        "first_request_ms": (done - imported) * 1000.0,
        "total_ms": (done - T0) * 1000.0,
    }


def baseline(bucket: str, key: str) -> dict[str, Any]:
    """Import scikit-learn, joblib and boto3, fetch the artifact from S3 and unpickle it: nothing else."""
    import io

    import boto3
    import joblib
    import sklearn  # noqa: F401

    imported = time.perf_counter()
    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    model = joblib.load(io.BytesIO(body))
    done = time.perf_counter()
    if not hasattr(model, "predict_proba"):
        raise RuntimeError(f"s3://{bucket}/{key} is not a classifier")
    return {
        "status": 200,
        "import_ms": (imported - T0) * 1000.0,
        "first_request_ms": (done - imported) * 1000.0,
        "total_ms": (done - T0) * 1000.0,
    }


def main() -> None:
    mode, *args = sys.argv[1:]
    result = handler(*args) if mode == "handler" else baseline(*args)
    result["t0"] = T0
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
