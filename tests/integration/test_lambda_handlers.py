"""The Lambda entry points as Lambda calls them: settings from the environment, one environment per process."""

from __future__ import annotations

import gzip
import json

import pytest

import functions.handlers.log_outcome as log_outcome_module
import functions.handlers.predict as predict_module
from tests.events import load_event, request_id, response_json


@pytest.fixture
def fresh_handlers(monkeypatch):
    """Forget the execution environments cached at module level (restored after the test)."""
    monkeypatch.setattr(predict_module, "_default", None)
    monkeypatch.setattr(log_outcome_module, "_default", None)


@pytest.mark.usefixtures("champion", "fresh_handlers")
def test_predict_lambda_handler_end_to_end(aws, cfg, function_env, lambda_context, capsys):
    function_env("predict")

    responses = [
        predict_module.lambda_handler(load_event(n), lambda_context)
        for n in ("predict_single", "predict_batch", "model", "health", "predict_invalid")
    ]

    assert [r["statusCode"] for r in responses] == [200, 200, 200, 200, 422]
    assert response_json(responses[1])["request_ids"][2] == f"{request_id(load_event('predict_batch'))}-2"
    function, _ = predict_module._default  # the one environment all five invocations shared
    assert function.env.settings.registry_bucket == cfg.registry_bucket
    function.env.capture.flush()
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket=cfg.data_bucket, Prefix="capture/")["Contents"]]
    lines = gzip.decompress(aws.get_object(Bucket=cfg.data_bucket, Key=keys[0])["Body"].read()).splitlines()
    assert [json.loads(line)["n"] for line in lines] == [1, 3]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    predictions = [m for m in emf if "Predictions" in m]
    assert [m["model_version"] for m in predictions] == ["1", "1"]
    assert {m["_aws"]["CloudWatchMetrics"][0]["Namespace"] for m in emf} == {cfg.metrics_namespace}


@pytest.mark.usefixtures("champion", "fresh_handlers")
def test_predict_lambda_handler_honours_the_model_version_pin(train_model, registry, cfg, function_env, lambda_context):
    train_model()
    registry.set_aliases(cfg.model_name, {"champion": 2})
    function_env("predict", MODEL_VERSION="1")

    body = response_json(predict_module.lambda_handler(load_event("predict_single"), lambda_context))

    assert body["model_version"] == 1


def test_log_outcome_lambda_handler_end_to_end(champion, function_env, fresh_handlers, lambda_context):
    function_env("log_outcome")

    first = response_json(log_outcome_module.lambda_handler(load_event("log_outcome"), lambda_context))
    again = response_json(log_outcome_module.lambda_handler(load_event("log_outcome"), lambda_context))

    assert (first["accepted"], first["duplicate_batch"], again["duplicate_batch"]) == (3, False, True)


def test_predict_lambda_handler_without_a_model_answers_503(aws, function_env, fresh_handlers, lambda_context):
    function_env("predict")

    response = predict_module.lambda_handler(load_event("predict_single"), lambda_context)

    assert response["statusCode"] == 503
    assert response["headers"]["Retry-After"] == "5"
    assert response_json(response)["code"] == "model_unavailable"
