"""Records still buffered when Lambda stops an environment are written, not lost.

The predict process registers an internal extension during Init (so that Lambda sends its runtime a
SIGTERM before shutdown) and flushes capture on SIGTERM. Here a fresh predict process serves one
request against moto in server mode, with ``AWS_LAMBDA_RUNTIME_API`` pointing at a stand-in for the
Extensions API on 127.0.0.1, and is then stopped with SIGTERM while its record is still buffered.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.bootstrap import AwsClients
from functions.config import function_environment
from functions.services.training import train_and_register
from tests.conftest import CFG, DATA, TRAINABLE

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class ExtensionsApi(ThreadingHTTPServer):
    """The two calls of Lambda's Extensions API an internal extension makes: register, then next (held)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ExtensionsHandler)
        self.registrations: list[tuple[str, dict[str, Any]]] = []
        self.next_calls: list[str] = []
        self.release = threading.Event()


class _ExtensionsHandler(BaseHTTPRequestHandler):
    server: ExtensionsApi

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.registrations.append((self.headers["Lambda-Extension-Name"], body))
        self._answer({"functionName": "mlops-local-predict"}, {"Lambda-Extension-Identifier": "ext-1"})

    def do_GET(self) -> None:
        self.server.next_calls.append(self.headers["Lambda-Extension-Identifier"])
        self.server.release.wait(60)  # no event comes: the environment is stopped instead
        self._answer({"eventType": "SHUTDOWN"}, {})

    def _answer(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        for key, value in {**headers, "Content-Length": str(len(data))}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@pytest.fixture
def extensions_api() -> Iterator[ExtensionsApi]:
    api = ExtensionsApi()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    try:
        yield api
    finally:
        api.release.set()
        api.shutdown()
        api.server_close()


def test_a_stopped_environment_writes_the_capture_it_still_buffers(moto_endpoint: str, extensions_api: ExtensionsApi):
    clients = AwsClients()
    registry = S3ModelRegistry(clients.s3, CFG.registry_bucket)
    datasets = S3DatasetStore(clients.s3, CFG.data_bucket, CFG.datasets_prefix)
    t = TRAINABLE["breast_cancer"]
    uri = datasets.upload(t.file, (DATA / t.file).read_bytes())
    card = train_and_register(registry, datasets, model_name=CFG.model_name, dataset_uri=uri, spec=t.spec)
    registry.set_aliases(CFG.model_name, {"champion": card.version})
    env = {
        **os.environ,
        **function_environment(CFG, "predict"),
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{extensions_api.server_address[1]}",
    }
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.processes.shutdown_child", "predict_single"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        served = json.loads(child.stdout.readline())
        assert served["status"] == 200
        prefix = f"{CFG.capture_prefix}/{CFG.model_name}/"
        assert clients.s3.list_objects_v2(Bucket=CFG.data_bucket, Prefix=prefix).get("KeyCount", 0) == 0  # buffered

        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=30) == 0, child.stderr.read() if child.stderr else ""
    finally:
        if child.poll() is None:
            child.kill()

    assert extensions_api.registrations == [("mlops-flush-on-shutdown", {"events": ["INVOKE"]})]
    assert extensions_api.next_calls == ["ext-1"]  # registered during Init, then waiting for events
    keys = [o["Key"] for o in clients.s3.list_objects_v2(Bucket=CFG.data_bucket, Prefix=prefix).get("Contents", [])]
    assert len(keys) == 1
    body = clients.s3.get_object(Bucket=CFG.data_bucket, Key=keys[0])["Body"].read()
    records = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert [r["request_id"] for r in records] == [served["request_id"]]
