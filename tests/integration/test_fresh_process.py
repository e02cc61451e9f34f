"""Serving from a fresh process, as a Lambda cold start does, against moto in server mode on 127.0.0.1.

- predict and log-outcome answer every request form without importing scikit-learn, scipy, joblib,
  skops, pandas or the ONNX converter;
- a forged version (pickles that run a command, with cards edited to match them) made champion runs
  no command in predict's cold start, in retrain, in drift-check or in the CLI.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.bootstrap import AwsClients
from functions.config import function_environment
from functions.domain.artifacts import sha256_hex
from functions.domain.card import ModelCard
from functions.handlers.drift_check import DriftCheckEnvironment, DriftCheckFunction
from functions.handlers.retrain import RetrainEnvironment, RetrainFunction
from functions.local import cli
from functions.services.training import train_and_register
from functions.settings import DriftCheckSettings, RetrainSettings
from tests.conftest import CFG, DATA, TRAINABLE
from tests.events import load_event

ROOT = Path(__file__).resolve().parents[2]
NAME = CFG.model_name


@pytest.fixture
def served_champion(moto_endpoint: str) -> ModelCard:
    """Version 1 of the breast-cancer model, trained here and made champion."""
    clients = AwsClients()
    registry = S3ModelRegistry(clients.s3, CFG.registry_bucket)
    datasets = S3DatasetStore(clients.s3, CFG.data_bucket, CFG.datasets_prefix)
    t = TRAINABLE["breast_cancer"]
    uri = datasets.upload(t.file, (DATA / t.file).read_bytes())
    card = train_and_register(registry, datasets, model_name=NAME, dataset_uri=uri, spec=t.spec)
    registry.set_aliases(NAME, {"champion": card.version})
    return card


def serve_fresh(function: str, *events: str) -> dict[str, Any]:
    """Run ``events`` through ``function``'s Lambda handler in a new Python process; its report."""
    env = {**os.environ, **function_environment(CFG, function)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.processes.serve_child", function, *events],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def test_predict_serves_every_form_without_training_libraries(served_champion: ModelCard):
    report = serve_fresh("predict", "predict_single", "predict_batch", "predict_columns", "model", "health")

    assert report["statuses"] == [200, 200, 200, 200, 200]
    single, batch, columns, model, health = report["bodies"]
    assert single["model_version"] == 1 and len(single["probabilities"][0]) == 2
    assert len(batch["predictions"]) == len(batch["request_ids"]) > 1
    assert columns["predictions"]
    assert model["artifacts"]["serving"]["format"] == "onnx"
    assert health["status"] == "ok"
    assert report["forbidden"] == []


def test_log_outcome_serves_without_training_libraries(served_champion: ModelCard):
    report = serve_fresh("log_outcome", "log_outcome")

    assert report["statuses"][0] < 300
    assert report["forbidden"] == []


def test_the_child_would_see_a_training_import():
    """Control for the two tests above: the same report does list scikit-learn once it is imported."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sklearn; from tests.processes.serve_child import forbidden_modules as f; print(f())",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "sklearn" in done.stdout and "scipy" in done.stdout


# -- the attacker with write access to the registry bucket -------------------------------------


class _RunsACommand:
    """Unpickling this runs ``touch <marker>``: a stand-in for any command an attacker would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def forge_champion(registry: S3ModelRegistry, like: ModelCard, payload: bytes, schema: int) -> int:
    """Write a version whose artifacts are ``payload`` and whose card records their hashes; make it champion.

    ``schema`` 2: model.onnx and model.skops are the pickle. ``schema`` 1: a card of the joblib era.
    """
    s3, bucket = registry._s3, registry.bucket
    version = max(c.version for c in registry.list_versions(like.name)) + 1
    prefix = f"models/{like.name}/versions/{version}/"
    doc = json.loads(like.model_dump_json())
    doc["version"] = version
    if schema == 2:
        for role, ref in doc["artifacts"].items():
            ref.update(sha256=sha256_hex(payload), bytes=len(payload))
            s3.put_object(Bucket=bucket, Key=prefix + ref["file"], Body=payload)
            assert role in {"serving", "pipeline"}
    else:
        for key in ("artifacts", "serving_graph", "upgraded_from"):
            doc.pop(key)
        doc.update(schema_version=1, artifact_sha256=sha256_hex(payload), artifact_bytes=len(payload))
        s3.put_object(Bucket=bucket, Key=prefix + "model.joblib", Body=payload)
    s3.put_object(Bucket=bucket, Key=prefix + "card.json", Body=json.dumps(doc).encode())
    registry.set_aliases(like.name, {"champion": version}, reason="forged")
    return version


@pytest.fixture
def function_settings(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    def apply(function: str) -> None:
        for name, value in function_environment(CFG, function).items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.mark.parametrize("schema", [2, 1])
def test_a_forged_champion_runs_no_command_anywhere(
    served_champion: ModelCard,
    moto_endpoint: str,
    tmp_path: Path,
    function_settings: Callable[[str], None],
    capsys: pytest.CaptureFixture[str],
    *,
    schema: int,
):
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_RunsACommand(marker))
    pickle.loads(payload)  # control: the payload does run its command when unpickled
    assert marker.exists()
    marker.unlink()
    clients = AwsClients()
    registry = S3ModelRegistry(clients.s3, CFG.registry_bucket)
    forged = forge_champion(registry, served_champion, payload, schema)

    # predict: a cold start in a fresh process
    report = serve_fresh("predict", "predict_single", "health")
    assert report["statuses"] == [503, 503]
    assert report["bodies"][1]["status"] == "unavailable"
    if schema == 1:
        assert "mlops upgrade-registry" in report["bodies"][0]["message"]

    # retrain: continues from the champion's pipeline
    function_settings("retrain")
    retrain = RetrainFunction(RetrainEnvironment(RetrainSettings.from_environment(), clients))
    result = retrain.handle({**load_event("retrain_operator"), "force": True}, None)
    # The champion's pipeline is refused (never unpickled), so it cannot be scored; the candidate trained
    # from the base data goes through the gates and the canary like any other.
    assert "skops" in result["metrics"]["champion_note"], result

    # drift-check: reads the champion's card and the traffic
    function_settings("drift_check")
    drift = DriftCheckFunction(DriftCheckEnvironment(DriftCheckSettings.from_environment(), clients))
    drift.handle(load_event("schedule"), None)

    # the CLI an operator uses day to day
    for argv in (["models"], ["status"], ["invoke", "predict", "events/predict_single.json"]):
        cli.main([*argv, "--endpoint-url", moto_endpoint])

    assert not marker.exists()
    assert registry.resolve(NAME, "champion") == forged  # nothing "repaired" it behind the operator's back
    capsys.readouterr()
