"""`mlops upgrade-registry`: versions registered with joblib pickles get a checked graph and a skops file."""

from __future__ import annotations

import io
import json
from typing import Any

import joblib
import pytest

from functions.adapters.registry import S3ModelRegistry
from functions.bootstrap import AwsClients
from functions.domain.artifacts import sha256_hex
from functions.domain.card import ModelCard
from functions.domain.pipeline_io import load_pipeline
from functions.local import cli
from functions.services.upgrade import upgrade_registry
from tests.conftest import CFG
from tests.events import load_event, response_json

NAME = CFG.model_name


def legacy_version(
    aws: Any, registry: S3ModelRegistry, like: ModelCard, pipeline: Any, *, sha256: str | None = None
) -> int:
    """Write ``pipeline`` as a version of the joblib era (card schema 1, ``model.joblib``), like today's release."""
    buffer = io.BytesIO()
    joblib.dump(pipeline, buffer)
    data = buffer.getvalue()
    version = max((c.version for c in registry.list_versions(like.name)), default=0) + 1
    doc = json.loads(like.model_dump_json())
    for key in ("artifacts", "serving_graph", "upgraded_from"):
        doc.pop(key)
    doc["libraries"] = {k: v for k, v in doc["libraries"].items() if k in {"scikit-learn", "numpy", "scipy"}}
    doc["libraries"]["joblib"] = joblib.__version__
    doc.update(version=version, schema_version=1, artifact_sha256=sha256 or sha256_hex(data), artifact_bytes=len(data))
    prefix = f"models/{like.name}/versions/{version}/"
    aws.put_object(Bucket=CFG.registry_bucket, Key=prefix + "model.joblib", Body=data)
    aws.put_object(Bucket=CFG.registry_bucket, Key=prefix + "card.json", Body=json.dumps(doc).encode())
    return version


@pytest.fixture
def legacy(aws, registry, champion, trained) -> int:
    """Version 2: the champion's pipeline as today's release stored it, made champion."""
    version = legacy_version(aws, registry, champion, trained["breast_cancer"].model)
    registry.set_aliases(NAME, {"champion": version})
    return version


def test_predict_names_the_command_for_an_unconverted_version(legacy, predict_function, lambda_context):
    function = predict_function()

    response = response_json(function.handle(load_event("predict_single"), lambda_context))
    health = function.handle(load_event("health"), lambda_context)

    assert response["code"] == "model_unavailable"
    assert "mlops upgrade-registry" in response["message"]
    assert health["statusCode"] == 503


def test_upgrade_converts_a_legacy_version_through_the_fidelity_check(
    legacy, registry, datasets, predict_function, lambda_context
):
    lines: list[str] = []

    results = upgrade_registry(registry, datasets, [NAME], progress=lines.append)

    assert [(r.version, r.outcome) for r in results] == [(1, "already_converted"), (legacy, "converted")]
    assert "training_data" in results[1].detail  # checked on every training row: the data set is unchanged
    card = registry.get_card(NAME, legacy)
    assert card.schema_version == 2 and card.serving_artifact is not None
    assert card.serving_graph is not None and card.serving_graph.fidelity.max_scaled_difference <= 1e-6
    assert card.upgraded_from is not None and card.upgraded_from["format"] == "joblib"
    assert card.artifacts["pipeline"].format == "skops"
    load_pipeline(registry.read_artifact(card, "pipeline"), card)  # the skops file loads under the allow-list
    response = predict_function().handle(load_event("predict_single"), lambda_context)
    assert response["statusCode"] == 200 and response_json(response)["model_version"] == legacy
    assert lines and f"v{legacy}: converted" in lines[-1]
    # A second run has nothing to do.
    again = upgrade_registry(registry, datasets, [NAME])
    assert [r.outcome for r in again] == ["already_converted", "already_converted"]


def test_upgrade_refuses_a_pickle_that_does_not_match_its_card(aws, registry, datasets, champion, trained):
    version = legacy_version(aws, registry, champion, trained["breast_cancer"].model, sha256="0" * 64)

    results = upgrade_registry(registry, datasets, [NAME])

    assert results[-1].version == version and results[-1].outcome == "failed"
    assert "failed verification" in results[-1].detail
    assert registry.get_card(NAME, version).serving_artifact is None


def test_the_cli_command_upgrades_and_exits_non_zero_on_failure(moto_endpoint, make_card, trained, capsys):
    clients = AwsClients()
    registry = S3ModelRegistry(clients.s3, CFG.registry_bucket)
    like, files = make_card()
    registry.register(NAME, files, lambda v: like.model_copy(update={"version": v}))
    good = legacy_version(clients.s3, registry, like, trained["breast_cancer"].model)
    ok = cli.main(["upgrade-registry", "--model-name", NAME, "--endpoint-url", moto_endpoint])
    bad = legacy_version(clients.s3, registry, like, trained["breast_cancer"].model, sha256="0" * 64)
    failed = cli.main(["upgrade-registry", "--endpoint-url", moto_endpoint])

    out = capsys.readouterr().out
    assert (ok, failed) == (0, 1)
    assert registry.get_card(NAME, good).serving_artifact is not None
    assert registry.get_card(NAME, bad).serving_artifact is None
    assert '"outcome": "failed"' in out
