"""The local runtime: moto on 127.0.0.1, the HTTP API turned into API Gateway events, the handlers."""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from functions.config import StageConfig, function_environment

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
API_GATEWAY_MAX_BODY = 10 * 1024 * 1024
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/predict"): "predict",
    ("GET", "/model"): "predict",
    ("GET", "/health"): "predict",
    ("POST", "/outcomes"): "log_outcome",
}
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def use_endpoint(endpoint_url: str, region: str) -> None:
    """Point every boto3 client of this process at ``endpoint_url`` with throw-away credentials."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(var, None)
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S105 - moto's placeholder, not a secret
        AWS_DEFAULT_REGION=region,
        AWS_REGION=region,
    )


class MotoServer:
    """moto in server mode, bound to loopback only."""

    def __init__(self, port: int = 0) -> None:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> str:
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self.endpoint_url

    def stop(self) -> None:
        self._server.stop()


@dataclass
class LocalMetrics:
    """EMF metric records the handlers printed, kept so the local runtime can report and alarm on them."""

    records: list[dict[str, Any]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, emf: dict[str, Any]) -> None:
        with self._lock:
            self.records.append(emf)

    def total(self, name: str, **dimensions: str) -> float:
        """Sum of metric ``name`` over records whose dimensions include ``dimensions``."""
        with self._lock:
            records = list(self.records)
        out = 0.0
        for rec in records:
            if name in rec and all(str(rec.get(k)) == v for k, v in dimensions.items()):
                value = rec[name]
                out += sum(value) if isinstance(value, list) else float(value)
        return out


class OutputRouter:
    """Stands in for ``sys.stdout``: EMF lines go to metrics, JSON log lines to ``logs``, the rest through."""

    def __init__(self, passthrough: IO[str], metrics: LocalMetrics, logs: IO[str] | None) -> None:
        self._passthrough = passthrough
        self._metrics = metrics
        self._logs = logs
        self._pending = threading.local()

    def write(self, text: str) -> int:
        buf = getattr(self._pending, "buf", "") + text
        *lines, rest = buf.split("\n")
        self._pending.buf = rest
        for line in lines:
            self._route(line)
        return len(text)

    def _route(self, line: str) -> None:
        if line.startswith('{"_aws"'):
            self._metrics.record(json.loads(line))
        elif line.startswith('{"level"'):
            if self._logs is not None:
                self._logs.write(line + "\n")
                self._logs.flush()
        else:
            self._passthrough.write(line + "\n")

    def flush(self) -> None:
        self._passthrough.flush()

    def isatty(self) -> bool:
        return self._passthrough.isatty()


class FunctionHost:
    """The deployed functions, each as one execution environment, invoked one request at a time."""

    def __init__(self, config: StageConfig, s3: Any) -> None:
        from functions.bootstrap import OutcomeEnvironment, PredictEnvironment
        from functions.handlers import log_outcome, predict
        from functions.settings import LogOutcomeSettings, PredictSettings

        self.config = config
        self.predict_env = PredictEnvironment(
            PredictSettings.model_validate(_settings_kwargs(config, "predict")), s3=s3
        )
        self.outcome_env = OutcomeEnvironment(
            LogOutcomeSettings.model_validate(_settings_kwargs(config, "log_outcome")), s3=s3
        )
        self.handlers: dict[str, Handler] = {
            "predict": predict.instrument(predict.PredictFunction(self.predict_env)),
            "log_outcome": log_outcome.instrument(log_outcome.LogOutcomeFunction(self.outcome_env)),
        }
        # One lock: a Lambda execution environment serves one request at a time, and Powertools
        # Metrics keeps its buffer in class state shared by every function in this process.
        self._lock = threading.Lock()

    def invoke(self, function: str, event: dict[str, Any]) -> dict[str, Any]:
        from functions.local.events import LocalContext

        with self._lock:
            return self.handlers[function](event, LocalContext(function_name=f"{self.config.app_name}-{function}"))

    def flush(self) -> None:
        if self.predict_env.capture is not None:
            self.predict_env.capture.flush()


def _settings_kwargs(config: StageConfig, function: str) -> dict[str, str]:
    return {k.lower(): v for k, v in function_environment(config, function).items()}


class _ApiRequestHandler(BaseHTTPRequestHandler):
    server: _ApiServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        from functions.local.events import api_gateway_event

        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > API_GATEWAY_MAX_BODY:
            self._reply(
                413,
                {"Content-Type": "application/json"},
                json.dumps({"code": "payload_too_large", "message": "request body exceeds 10 MB"}).encode(),
            )
            self.close_connection = True
            return
        raw = self.rfile.read(length) if length else b""
        function = ROUTES.get((method, url.path), "predict")
        try:
            body, encoded = (raw.decode("utf-8") if raw else None), False
        except UnicodeDecodeError:
            body, encoded = base64.b64encode(raw).decode(), True
        event = api_gateway_event(
            method,
            url.path,
            body,
            headers=dict(self.headers.items()),
            query=dict(parse_qsl(url.query)),
            source_ip=self.client_address[0],
        )
        event["isBase64Encoded"] = encoded
        try:
            response = self.server.host.invoke(function, event)
        except Exception:  # noqa: BLE001 - a crashed invocation is a 502 at API Gateway too
            import traceback

            traceback.print_exc()
            response = {
                "statusCode": 502,
                "headers": {"Content-Type": "application/json"},
                "body": json.dumps({"message": "Internal server error"}),
            }
        payload = response.get("body") or ""
        data = payload.encode() if isinstance(payload, str) else payload
        if response.get("isBase64Encoded"):
            data = base64.b64decode(data)
        headers = {k: v for k, v in (response.get("headers") or {}).items() if isinstance(v, str)}
        headers["x-amzn-RequestId"] = event["requestContext"]["requestId"]
        self._reply(int(response.get("statusCode", 502)), headers, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        if self.server.access_log is not None:
            self.server.access_log(f"{self.address_string()} {format % args}")


class _ApiServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, host: FunctionHost, access_log: Callable[[str], None] | None) -> None:
        super().__init__(("127.0.0.1", port), _ApiRequestHandler)
        self.host = host
        self.access_log = access_log


class LocalRuntime:
    """moto + buckets + a first model + the HTTP API on 127.0.0.1; a context manager that cleans up."""

    def __init__(
        self,
        config: StageConfig,
        *,
        port: int = 0,
        moto_port: int = 0,
        log_stream: IO[str] | None = None,
        access_log: Callable[[str], None] | None = None,
        progress: Callable[[str], None] = print,
    ) -> None:
        self.config = config
        self.port = port
        self.moto = MotoServer(moto_port)
        self.metrics = LocalMetrics()
        self._log_stream = log_stream
        self._access_log = access_log
        self._progress = progress
        self._saved_stdout: Any = None
        self._server: _ApiServer | None = None
        self._thread: threading.Thread | None = None
        self.host: FunctionHost | None = None
        self.s3: Any = None

    @property
    def api_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LocalRuntime:
        endpoint = self.moto.start()
        use_endpoint(endpoint, self.config.region)
        from functions.bootstrap import s3_client

        self.s3 = s3_client()
        ensure_buckets(self.s3, self.config)
        bootstrap_model(self.s3, self.config, self._progress)
        self._saved_stdout = sys.stdout
        sys.stdout = OutputRouter(self._saved_stdout, self.metrics, self._log_stream)
        self.host = FunctionHost(self.config, self.s3)
        self._server = _ApiServer(self.port, self.host, self._access_log)
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self.host is not None:
            self.host.flush()
        if self._saved_stdout is not None:
            sys.stdout = self._saved_stdout
            self._saved_stdout = None
        self.moto.stop()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def ensure_buckets(s3: Any, config: StageConfig) -> None:
    """Create the registry and data buckets as the storage stack does: versioned, encrypted, private."""
    from botocore.exceptions import ClientError

    for bucket in (config.registry_bucket, config.data_bucket):
        try:
            s3.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        s3.put_bucket_encryption(
            Bucket=bucket,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        s3.put_public_access_block(
            Bucket=bucket,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )


def bootstrap_model(s3: Any, config: StageConfig, progress: Callable[[str], None] = print) -> int | None:
    """Train and register the first model from the shipped data set when the registry has none.

    Returns:
        The version registered, or None when a champion already existed.
    """
    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.services.training import train_and_register

    registry = S3ModelRegistry(s3, config.registry_bucket)
    if "champion" in registry.get_aliases(config.model_name):
        return None
    progress(f"registry has no {config.model_name!r} model yet: training one from data/{config.demo.file}")
    datasets = S3DatasetStore(s3, config.data_bucket, config.datasets_prefix)
    uri = datasets.upload(config.demo.file, (DATA_DIR / config.demo.file).read_bytes())
    card = train_and_register(
        registry,
        datasets,
        model_name=config.model_name,
        dataset_uri=uri,
        spec=config.demo.training,
        description="bootstrapped from the shipped data set",
        progress=lambda m: progress(f"  {m}"),
    )
    return card.version
