"""Shared set-up of the benchmarks: moto S3, registered models, real-shape events and in-process handlers."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / ".bench"
STAGE = "local"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class ModelUnderTest:
    """One registered model the benchmark serves."""

    key: str  # short name used in the JSON keys ("lr", "rf")
    label: str
    model_name: str
    version: int


def progress(message: str) -> None:
    """A timestamped progress line on stderr (stdout carries the table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class MotoServer:
    """moto's S3 server in a child process on 127.0.0.1; ``env`` points boto3 at it."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "functions.local.moto_process"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"moto server did not start (got {line!r})")
        self.port = int(line)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        if self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def predict_env(model_name: str, endpoint_env: dict[str, str]) -> dict[str, str]:
    """The predict function's environment (as the CDK stacks set it), serving ``model_name`` from moto."""
    from functions.config import function_environment, stage_config

    return {**function_environment(stage_config(STAGE), "predict"), **endpoint_env, "MODEL_NAME": model_name}


def register_models(endpoint_env: dict[str, str]) -> list[ModelUnderTest]:
    """Create the stage's buckets, upload the demo dataset and register a logistic regression and a random forest."""
    from functions.config import stage_config

    cfg = stage_config(STAGE)
    # Powertools reads its service name and namespace when functions.observability is first imported.
    os.environ.update(predict_env(cfg.model_name, endpoint_env))
    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.bootstrap import s3_client
    from functions.domain.card import EstimatorSpec
    from functions.services.training import train_and_register

    s3 = s3_client()
    for bucket in (cfg.registry_bucket, cfg.data_bucket):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=cfg.registry_bucket, VersioningConfiguration={"Status": "Enabled"})
    datasets = S3DatasetStore(s3, cfg.data_bucket, cfg.datasets_prefix)
    uri = datasets.upload(cfg.demo.file, (ROOT / "data" / cfg.demo.file).read_bytes())
    registry = S3ModelRegistry(s3, cfg.registry_bucket)
    lr_spec = cfg.demo.training
    rf_spec = lr_spec.model_copy(update={"estimator": EstimatorSpec(kind="random_forest")})
    out = []
    for key, label, name, spec in (
        ("lr", "logistic regression", cfg.model_name, lr_spec),
        ("rf", "random forest (100 trees)", f"{cfg.model_name}-rf", rf_spec),
    ):
        card = train_and_register(registry, datasets, model_name=name, dataset_uri=uri, spec=spec)
        out.append(ModelUnderTest(key=key, label=label, model_name=name, version=card.version))
    return out


def dataset_rows(n: int) -> tuple[list[str], list[list[float]]]:
    """The first ``n`` feature rows of the demo dataset (tiled when ``n`` exceeds it) and the feature names."""
    from functions.config import stage_config

    demo = stage_config(STAGE).demo
    with (ROOT / "data" / demo.file).open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        target = header.index(demo.training.target)
        rows = [[float(v) for j, v in enumerate(r) if j != target] for r in reader if r]
    names = [h for j, h in enumerate(header) if j != target]
    tiled = [rows[i % len(rows)] for i in range(n)]
    return names, tiled


def predict_body(names: list[str], rows: list[list[float]], form: str) -> str:
    """A predict request body in the ``rows`` (list of objects) or ``columns`` (columnar) form."""
    if form == "rows":
        return json.dumps({"rows": [dict(zip(names, r, strict=True)) for r in rows]})
    if form == "columns":
        return json.dumps({"columns": {name: [r[j] for r in rows] for j, name in enumerate(names)}})
    raise ValueError(f"unknown form {form!r}")


_HEADERS = {
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate, br",
    "CloudFront-Forwarded-Proto": "https",
    "CloudFront-Is-Desktop-Viewer": "true",
    "CloudFront-Viewer-Country": "IE",
    "Content-Type": "application/json",
    "Host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
    "User-Agent": "python-requests/2.32.3",
    "Via": "1.1 0123456789abcdef0123456789abcdef.cloudfront.net (CloudFront)",
    "X-Amz-Cf-Id": "mK8Qv3sY0xq1vJ6Yc0m5b7HkV2n3l1o4p5q6r7s8t9u0v1w2x3y4z5==",
    "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
    "X-Forwarded-For": "203.0.113.7, 130.176.1.2",
    "X-Forwarded-Port": "443",
    "X-Forwarded-Proto": "https",
}


def api_gateway_event(method: str, path: str, body: str | None, request_id: str | None = None) -> dict[str, Any]:
    """An API Gateway REST API (v1) proxy event as the ``{proxy+}`` integration delivers it (body is a string)."""
    now = time.time()
    rid = request_id or str(uuid.uuid4())
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": dict(_HEADERS),
        "multiValueHeaders": {k: [v] for k, v in _HEADERS.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "resourceId": "a1b2c3",
            "stage": "live",
            "requestId": rid,
            "extendedRequestId": "Xy1ZAFz0IAMF" + rid[:4],
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "requestTimeEpoch": int(now * 1000),
            "path": f"/live{path}",
            "resourcePath": "/{proxy+}",
            "httpMethod": method,
            "protocol": "HTTP/1.1",
            "domainName": _HEADERS["Host"],
            "identity": {"sourceIp": "203.0.113.7", "userAgent": _HEADERS["User-Agent"], "accessKey": None},
        },
        "body": body,
        "isBase64Encoded": False,
    }


@dataclass
class LambdaContextStub:
    """The attributes of the Lambda context object that the handler and Powertools read."""

    function_name: str = "mlops-local-predict"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/mlops-local-predict"
    log_stream_name: str = "2025/01/01/[$LATEST]0123456789abcdef"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:mlops-local-predict:live"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send stdout (EMF metrics and JSON logs) to /dev/null, line-buffered: one write syscall per line, as on Lambda."""
    saved = sys.stdout
    with open(os.devnull, "w", buffering=1) as sink:
        sys.stdout = sink
        try:
            yield
        finally:
            sys.stdout = saved


@dataclass
class InProcess:
    """One predict execution environment built in this process, as Lambda builds it."""

    function: Any  # functions.handlers.predict.PredictFunction
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    graph: Any  # the loaded functions.domain.inference.ServingGraph the handler answers from
    pipeline: Any  # the same version's scikit-learn pipeline (skops), for the bare baseline
    names: list[str]
    fidelity: Any  # the card's functions.domain.card.GraphFidelity: how closely the graph reproduces the pipeline


def build_in_process(model: ModelUnderTest, endpoint_env: dict[str, str]) -> InProcess:
    """Set the function's environment, build the instrumented handler and load the model through the registry."""
    os.environ.update(predict_env(model.model_name, endpoint_env))
    from functions.bootstrap import PredictEnvironment
    from functions.domain.pipeline_io import load_pipeline
    from functions.handlers.predict import PredictFunction, instrument
    from functions.settings import PredictSettings

    function = PredictFunction(PredictEnvironment(PredictSettings.from_environment()))
    handler = instrument(function)
    with quiet_stdout():
        service = function.env.service()
    card = service.loaded.card
    pipeline = load_pipeline(function.env.registry.read_artifact(card, "pipeline"), card)
    return InProcess(
        function=function,
        handler=handler,
        graph=service.loaded.model,
        pipeline=pipeline,
        names=card.feature_schema.names,
        fidelity=card.serving_graph.fidelity if card.serving_graph else None,
    )


def check_response(response: dict[str, Any], expected_proba: np.ndarray) -> None:
    """Fail loudly unless the handler answered 200 with scikit-learn's probabilities (to the fidelity tolerance)."""
    if response.get("statusCode") != 200:
        raise RuntimeError(f"handler answered {response.get('statusCode')}: {str(response.get('body'))[:500]}")
    got = np.asarray(json.loads(response["body"])["probabilities"], dtype=np.float64)
    if got.shape != expected_proba.shape or not np.all(
        np.abs(got - expected_proba) <= 1e-6 * np.maximum(1.0, np.abs(expected_proba))
    ):
        raise RuntimeError("handler probabilities differ from scikit-learn's predict_proba on the same rows")


def publish_pickle(model: ModelUnderTest, pipeline: Any) -> str:
    """Put ``pipeline`` as a joblib pickle in the registry bucket (outside ``models/``); its key.

    The cold-start baseline is what a user would write by hand: boto3, scikit-learn and a pickle.
    """
    import io

    import joblib

    from functions.bootstrap import s3_client
    from functions.config import stage_config

    key = f"bench/{model.model_name}-v{model.version}.joblib"
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    s3_client().put_object(Bucket=stage_config(STAGE).registry_bucket, Key=key, Body=buffer.getvalue())
    return key


def wait_capture_idle(capture: Any, timeout: float = 30.0) -> None:
    """Wait until the capture writer thread has written every batch handed to it (without flushing the buffer)."""
    pending = getattr(getattr(capture, "_queue", None), "unfinished_tasks", None)
    if pending is None:
        return
    deadline = time.monotonic() + timeout
    while capture._queue.unfinished_tasks and time.monotonic() < deadline:
        time.sleep(0.0002)
