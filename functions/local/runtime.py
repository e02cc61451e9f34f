"""The local runtime: moto on 127.0.0.1, the HTTP API turned into API Gateway events, the handlers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from functions.bootstrap import AwsClients
from functions.config import StageConfig, function_environment, stage_config
from functions.deployment import rate_seconds
from functions.local.gateway import ApiServer
from functions.local.host import FunctionHost
from functions.local.observability import LocalMetrics, OutputRouter
from functions.services.drift_hours import AGGREGATE_EVENT

DATA_DIR = Path(__file__).resolve().parents[2] / "data"
LAMBDA_ROLE = "mlops-local-lambda"


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
    """moto in server mode, bound to loopback only, in a child process (``functions/local/moto_process.py``)."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.endpoint_url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._errors: IO[str] | None = None

    def start(self) -> str:
        errors = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - kept until stop(), read if start fails
        self._errors = errors
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "functions.local.moto_process", str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            errors.seek(0)
            reason = errors.read().strip().splitlines()[-1:] or ["it exited"]
            raise RuntimeError(f"moto did not start on 127.0.0.1:{self.port or 'any port'}: {reason[0]}")
        self.endpoint_url = f"http://127.0.0.1:{line}"
        return self.endpoint_url

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            assert proc.stdin is not None
            proc.stdin.close()  # the child serves until its stdin closes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._errors is not None:
            self._errors.close()
            self._errors = None


class LocalRuntime:
    """moto + the stack's resources + a first model + the HTTP API on 127.0.0.1; a context manager."""

    def __init__(
        self,
        config: StageConfig,
        *,
        port: int = 0,
        moto_port: int = 0,
        log_stream: IO[str] | None = None,
        access_log: Callable[[str], None] | None = None,
        progress: Callable[[str], None] = print,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.port = port
        self.moto = MotoServer(moto_port)
        self.metrics = LocalMetrics()
        self._log_stream = log_stream
        self._access_log = access_log
        self._progress = progress
        self._seed = seed
        self._saved_stdout: Any = None
        self._server: ApiServer | None = None
        self.host: FunctionHost | None = None
        self.clients: AwsClients | None = None

    @property
    def s3(self) -> Any:
        assert self.clients is not None
        return self.clients.s3

    @property
    def api_url(self) -> str:
        assert self._server is not None
        return self._server.url

    def start(self) -> LocalRuntime:
        endpoint = self.moto.start()
        use_endpoint(endpoint, self.config.region)
        self.clients = AwsClients()
        ensure_resources(self.clients, self.config)
        bootstrap_model(self.s3, self.config, self._progress)
        self._saved_stdout = sys.stdout
        sys.stdout = OutputRouter(self._saved_stdout, self.metrics, self._log_stream)
        self.host = FunctionHost(self.config, self.clients, seed=self._seed)
        self._server = ApiServer(self.port, self.host, self._access_log)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
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

    # -- what CloudWatch and EventBridge do on AWS ----------------------------------------------------
    def sync_cloudwatch(self) -> dict[str, str]:
        """Write capture, forward the emitted metrics to CloudWatch and judge every alarm."""
        assert self.host is not None and self.clients is not None
        self.host.flush()
        self.metrics.forward(self.clients.cloudwatch)
        return self.metrics.evaluate_alarms(self.clients.cloudwatch)

    def invoke(self, function: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run a hosted function on ``event`` (default: a scheduled event), as its schedule would."""
        assert self.host is not None
        return self.host.invoke(function, event or scheduled_event(self.config, function))


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
    if config.model_name != stage_config(config.stage).model_name:
        progress(
            f"registry has no champion of {config.model_name!r}: /health answers 503 until one is trained"
            f" (mlops train --model-name {config.model_name} --data FILE, against this server)"
        )
        return None  # only the demo model is trained from the shipped data set
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


class LocalScheduler:
    """Fires the stage's schedules (moto's rules never fire), judges alarms, and delivers bus events.

    EventBridge rules that target a Lambda cannot be evaluated by moto either, so events a
    function publishes (``result["events"]``) go to the function the stack's rule would call.
    """

    SYNC_SECONDS = 10.0
    RULES = {"ModelDriftDetected": "retrain", "ModelPerformanceDegraded": "retrain"}

    def __init__(self, runtime: LocalRuntime, on_run: Callable[[str], None] | None = None) -> None:
        self.runtime = runtime
        self._on_run = on_run or (lambda _line: None)
        config = runtime.config
        # job -> (function, rate, event); None: the function's "Scheduled Event"
        schedules: dict[str, tuple[str, str, dict[str, Any] | None]] = {
            "drift_check": ("drift_check", config.drift.schedule, None),
            "drift_aggregate": ("drift_check", config.drift.aggregate_schedule, dict(AGGREGATE_EVENT)),
            "retrain": ("retrain", config.retrain.schedule, None),
            "rollout": ("rollout", config.rollout.schedule, None),
        }
        hosted = runtime.host.handlers if runtime.host is not None else {}
        self._targets = {name: (fn, event) for name, (fn, _, event) in schedules.items() if fn in hosted}
        self.jobs = {name: float(rate_seconds(schedules[name][1])) for name in self._targets}
        self._next = {name: time.monotonic() + interval for name, interval in self.jobs.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="local-scheduler", daemon=True)

    def describe(self) -> str:
        return ", ".join(f"{name} every {int(s)} s" for name, s in self.jobs.items()) or "none"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def run(self, function: str, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Invoke ``function`` now and deliver the events it published; returns its result."""
        self.runtime.sync_cloudwatch()
        result = self.runtime.invoke(function, event)
        self._on_run(f"{function}: {summarize(result)}")
        for published in result.get("events", []) if isinstance(result, dict) else []:
            target = self.RULES.get(published.get("detail_type", ""))
            if target is not None and target in self._targets:
                self.run(target, bus_event(self.runtime.config, published["detail_type"], published["detail"]))
        return result

    def _loop(self) -> None:
        last_sync = 0.0
        while not self._stop.wait(1.0):
            now = time.monotonic()
            try:
                if now - last_sync >= self.SYNC_SECONDS:
                    self.runtime.sync_cloudwatch()
                    last_sync = now
                for name, interval in self.jobs.items():
                    if now >= self._next[name]:
                        self._next[name] = now + interval
                        self.run(*self._targets[name])
            except Exception as exc:  # noqa: BLE001 - a failed run is reported; the schedule goes on
                self._on_run(f"scheduled run failed: {type(exc).__name__}: {exc}")


def summarize(result: Any) -> str:
    """One line about a function's result, for progress output."""
    if not isinstance(result, dict):
        return str(result)
    keys = ("action", "status", "verdict", "reason", "drifted", "candidate_version", "objects_read")
    return ", ".join(f"{k}={result[k]}" for k in keys if result.get(k) not in (None, [], ""))


def scheduled_event(config: StageConfig, function: str) -> dict[str, Any]:
    """An EventBridge "Scheduled Event", as the function's schedule rule delivers it."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": config.region,
        "resources": [f"arn:aws:events:{config.region}:123456789012:rule/{config.resource_name(function)}-schedule"],
        "detail": {},
    }


def bus_event(config: StageConfig, detail_type: str, detail: dict[str, Any]) -> dict[str, Any]:
    """A custom event on the stage's bus, as a rule delivers it to its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": config.event_source,
        "account": "123456789012",
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": config.region,
        "resources": [],
        "detail": detail,
    }


def _placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "the local runtime runs the handlers in process; this is only a placeholder")
    return buffer.getvalue()


def ensure_resources(clients: AwsClients, config: StageConfig) -> None:
    """What the CDK stacks create, as far as the functions use it: buckets, the event bus, and the
    predict function with its first version behind the alias (code is a placeholder: moto cannot run it)."""
    from botocore.exceptions import ClientError

    ensure_buckets(clients.s3, config)
    try:
        clients.events.create_event_bus(Name=config.event_bus_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceAlreadyExistsException":
            raise
    lam = clients.lambda_
    try:
        lam.get_alias(FunctionName=config.predict_function_name, Name=config.rollout.alias_name)
        return
    except ClientError:
        pass
    iam = clients.client("iam")
    try:
        role = iam.get_role(RoleName=LAMBDA_ROLE)["Role"]["Arn"]
    except ClientError:
        trust = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
                ],
            }
        )
        role = iam.create_role(RoleName=LAMBDA_ROLE, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
    lam.create_function(
        FunctionName=config.predict_function_name,
        Runtime="python3.12",
        Role=role,
        Handler="functions.handlers.predict.lambda_handler",
        Code={"ZipFile": _placeholder_zip()},
        Environment={"Variables": function_environment(config, "predict")},
        Timeout=30,
        MemorySize=1024,
    )
    version = lam.publish_version(FunctionName=config.predict_function_name, Description="deployed by the stack")
    lam.create_alias(
        FunctionName=config.predict_function_name, Name=config.rollout.alias_name, FunctionVersion=version["Version"]
    )
