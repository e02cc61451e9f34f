"""The predict function end to end over moto: answers, model card, health, pins, and faults of ours."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.adapters.registry import S3ModelRegistry
from functions.config import stage_config
from functions.domain.card import ModelCard
from functions.handlers.predict import PredictFunction
from functions.observability import metrics
from tests.events import event_body, load_event, request_id, response_json, route, with_body
from tests.graphs import canned_nan_graph, register_graph

NAME = "breast-cancer"
REGISTRY_BUCKET = stage_config("local").registry_bucket


def call(function: PredictFunction, event: dict[str, Any], context: Any) -> tuple[int, Any]:
    response = function.handle(event, context)
    metrics.clear_metrics()  # as the log_metrics wrapper does after every invocation on Lambda
    return response["statusCode"], response_json(response)


def assert_probabilities(body: dict[str, Any], rows: int, classes: list[Any]) -> None:
    assert body["classes"] == classes
    assert len(body["probabilities"]) == rows
    for p in body["probabilities"]:
        assert len(p) == len(classes)
        assert sum(p) == pytest.approx(1.0)
        assert all(0.0 <= v <= 1.0 for v in p)


def test_single_prediction(champion, predict_function, lambda_context):
    event = load_event("predict_single")
    rid = request_id(event)

    status, body = call(predict_function(), event, lambda_context)

    assert status == 200
    assert body["predictions"] == [0]  # the first row of data/breast_cancer.csv is malignant (target 0)
    assert_probabilities(body, 1, [0, 1])
    assert body["probabilities"][0][0] > 0.9
    assert body["model_name"] == NAME
    assert body["model_version"] == champion.version == 1
    assert body["request_id"] == rid
    assert body["request_ids"] == [f"{rid}-0"]
    assert body["out_of_range"] == []


def test_batch_and_columnar_forms_answer_the_same(champion, predict_function, lambda_context):
    function = predict_function()
    batch_event, columns_event = load_event("predict_batch"), load_event("predict_columns")

    batch_status, batch = call(function, batch_event, lambda_context)
    columns_status, columns = call(function, columns_event, lambda_context)

    assert (batch_status, columns_status) == (200, 200)
    assert batch["predictions"] == columns["predictions"] == [0, 0, 0]
    assert batch["probabilities"] == columns["probabilities"]
    assert_probabilities(batch, 3, [0, 1])
    rid = request_id(batch_event)
    assert batch["request_ids"] == [f"{rid}-0", f"{rid}-1", f"{rid}-2"]
    assert columns["request_ids"] == [f"{request_id(columns_event)}-{i}" for i in range(3)]


def test_single_row_answers_like_the_first_row_of_a_batch(champion, predict_function, lambda_context):
    function = predict_function()

    _, single = call(function, load_event("predict_single"), lambda_context)
    _, batch = call(function, load_event("predict_batch"), lambda_context)

    assert single["probabilities"][0] == pytest.approx(batch["probabilities"][0])


def test_values_beyond_the_training_range_are_answered_and_flagged(champion, predict_function, lambda_context):
    spec = {f.name: f for f in champion.feature_schema.features}
    rows = event_body(load_event("predict_batch"))["rows"]
    rows[2]["mean_area"] = spec["mean_area"].maximum + 500.0
    rows[1]["mean_smoothness"] = spec["mean_smoothness"].minimum / 2

    status, body = call(predict_function(), with_body("predict_batch", {"rows": rows}), lambda_context)

    assert status == 200
    assert len(body["predictions"]) == 3
    assert body["out_of_range"] == [
        {
            "row": 1,
            "field": "mean_smoothness",
            "value": spec["mean_smoothness"].minimum / 2,
            "minimum": spec["mean_smoothness"].minimum,
            "maximum": spec["mean_smoothness"].maximum,
        },
        {
            "row": 2,
            "field": "mean_area",
            "value": spec["mean_area"].maximum + 500.0,
            "minimum": spec["mean_area"].minimum,
            "maximum": spec["mean_area"].maximum,
        },
    ]


def test_get_model_answers_the_card_summary(champion, predict_function, lambda_context):
    status, body = call(predict_function(), load_event("model"), lambda_context)

    assert status == 200
    assert body["name"] == NAME
    assert body["version"] == 1
    assert body["task"] == "binary_classification"
    assert body["classes"] == [0, 1]
    assert body["artifact_sha256"] == champion.artifact_sha256
    assert [f["name"] for f in body["features"]] == champion.feature_schema.names
    assert len(body["features"]) == 30
    assert body["metrics"]["roc_auc"] > 0.98
    assert "baseline" not in body


def test_health_names_the_served_version(champion, predict_function, lambda_context):
    status, body = call(predict_function(), load_event("health"), lambda_context)

    assert status == 200
    assert body == {
        "status": "ok",
        "model_name": NAME,
        "model_version": 1,
        "pinned": False,
        "artifact_sha256": champion.artifact_sha256,
    }


@pytest.mark.parametrize("event_name", ["predict_single", "model"])
def test_no_champion_is_503_model_unavailable(aws, predict_function, lambda_context, event_name: str):
    event = load_event(event_name)

    status, body = call(predict_function(), event, lambda_context)

    assert status == 503
    assert body["code"] == "model_unavailable"
    assert body["errors"] == []
    assert body["request_id"] == request_id(event)


def test_health_is_503_when_no_champion(aws, predict_function, lambda_context):
    status, body = call(predict_function(), load_event("health"), lambda_context)

    assert status == 503
    assert body["status"] == "unavailable"
    assert body["model_name"] == NAME


def test_a_model_registered_after_a_failed_load_is_served_once_the_retry_delay_passes(
    aws, predict_function, train_model, lambda_context, monkeypatch
):
    function = predict_function()
    assert call(function, load_event("health"), lambda_context)[0] == 503
    train_model()
    assert call(function, load_event("health"), lambda_context)[0] == 503  # retries are rate-limited

    monkeypatch.setattr("functions.bootstrap.RETRY_LOAD_AFTER_SECONDS", 0.0)

    status, body = call(function, load_event("predict_single"), lambda_context)
    assert (status, body["model_version"]) == (200, 1)


def test_model_version_pin_wins_over_the_champion(champion, train_model, registry, predict_function, lambda_context):
    second = train_model(estimator=champion.estimator.model_copy(update={"params": {"C": 0.05}}))
    registry.set_aliases(NAME, {"champion": second.version, "previous": 1}, expect={"champion": 1})

    pinned = predict_function(model_version=1)
    unpinned = predict_function()

    _, pinned_body = call(pinned, load_event("predict_single"), lambda_context)
    _, unpinned_body = call(unpinned, load_event("predict_single"), lambda_context)
    _, pinned_health = call(pinned, load_event("health"), lambda_context)
    assert (pinned_body["model_version"], unpinned_body["model_version"]) == (1, 2)
    assert pinned_body["probabilities"] != unpinned_body["probabilities"]
    assert (pinned_health["model_version"], pinned_health["pinned"]) == (1, True)
    assert call(pinned, load_event("model"), lambda_context)[1]["version"] == 1


def test_an_execution_environment_keeps_serving_the_model_it_loaded(
    champion, train_model, registry, predict_function, lambda_context
):
    function = predict_function()
    assert call(function, load_event("health"), lambda_context)[1]["model_version"] == 1
    train_model()
    registry.set_aliases(NAME, {"champion": 2})

    assert call(function, load_event("predict_single"), lambda_context)[1]["model_version"] == 1
    assert call(predict_function(), load_event("predict_single"), lambda_context)[1]["model_version"] == 2


@pytest.mark.parametrize("event_name", ["predict_single", "model", "health"])
def test_a_version_deployed_with_no_champion_serves_none_even_once_one_exists(
    champion, predict_function, lambda_context, event_name: str
):
    """MODEL_VERSION=none (CDK synthesized before any champion): 503 saying what publishes a serving version."""
    event = load_event(event_name)

    response = predict_function(model_version="none").handle(event, lambda_context)
    metrics.clear_metrics()

    body = response_json(response)
    assert response["statusCode"] == 503 and int(response["headers"]["Retry-After"]) > 0
    reason = body["reason"] if event_name == "health" else body["message"]
    assert "no champion of 'breast-cancer' to serve yet" in reason and "first promotion" in reason
    if event_name != "health":
        assert body["code"] == "model_unavailable" and body["request_id"] == request_id(event)


def test_pin_to_a_missing_version_is_503(champion, predict_function, lambda_context):
    status, body = call(predict_function(model_version=7), load_event("predict_single"), lambda_context)

    assert status == 503
    assert body["code"] == "model_unavailable"


def test_a_tampered_champion_is_refused_with_503(champion, aws, cfg, predict_function, lambda_context):
    aws.put_object(Bucket=cfg.registry_bucket, Key="models/breast-cancer/versions/1/model.onnx", Body=b"evil")

    status, body = call(predict_function(), load_event("predict_single"), lambda_context)
    health_status, health = call(predict_function(), load_event("health"), lambda_context)

    assert (status, body["code"]) == (503, "model_unavailable")
    assert (health_status, health["status"]) == (503, "unavailable")


def test_a_version_that_fails_its_canned_prediction_is_503_and_never_ok(
    champion, registry, predict_function, lambda_context
):
    graph = registry.read_artifact(champion, "serving")
    register_broken(registry, champion, graph, canned=[0.25, 0.75])  # the card records another answer
    function = predict_function()

    status, body = call(function, load_event("predict_single"), lambda_context)
    health_status, health = call(function, load_event("health"), lambda_context)

    assert (status, body["code"]) == (503, "model_unavailable")
    assert (health_status, health["status"]) == (503, "unavailable")


# -- faults of ours never leak ---------------------------------------------------------------

LEAKS = (
    "Traceback",
    "NotFittedError",
    "LogisticRegression",
    "sklearn",
    "s3://",
    "SHA-256",
    "joblib",
    "pickle",
    "onnx",
    "ONNXRuntime",
    "InferenceSession",
)


def register_broken(
    registry: S3ModelRegistry, champion: ModelCard, graph: bytes, canned: list[float] | None = None
) -> ModelCard:
    """Register ``graph`` under a card copied from the champion, and make it champion."""
    card = register_graph(registry, champion, graph, canned)
    registry.set_aliases(NAME, {"champion": card.version})
    return card


def assert_no_leak(body: dict[str, Any]) -> None:
    text = json.dumps(body)
    for word in LEAKS:
        assert word not in text, word


def test_a_model_that_raises_is_500_without_internals(champion, registry, predict_function, lambda_context):
    event = load_event("predict_single")
    register_broken(registry, champion, *canned_nan_graph(champion))  # answers its canned row, NaN for others

    status, body = call(predict_function(), event, lambda_context)

    assert status == 500
    assert body == {
        "code": "internal_error",
        "message": "internal error",
        "errors": [],
        "request_id": request_id(event),
    }


def test_a_graph_that_cannot_be_loaded_is_5xx_without_internals(champion, registry, predict_function, lambda_context):
    register_broken(registry, champion, b"this is not an ONNX graph")
    function = predict_function()

    status, body = call(function, load_event("predict_single"), lambda_context)
    health_status, health = call(function, load_event("health"), lambda_context)

    assert status >= 500 and health_status == 503
    assert body["code"] in {"internal_error", "model_unavailable"}
    assert_no_leak(body)
    assert_no_leak(health)


@pytest.mark.parametrize("fault", ["unloadable-graph", "corrupt-alias-document"])
def test_a_model_that_cannot_be_loaded_is_503_and_not_retried_at_once(
    champion, registry, aws, predict_function, lambda_context, *, fault: str
):
    if fault == "unloadable-graph":
        register_broken(registry, champion, b"this is not an ONNX graph")
    else:
        aws.put_object(Bucket=REGISTRY_BUCKET, Key="models/breast-cancer/aliases.json", Body=b"{not json")
    function = predict_function()

    first, _ = call(function, load_event("predict_single"), lambda_context)
    aws.put_object(  # repaired at once: a rate-limited retry must not see it yet
        Bucket=REGISTRY_BUCKET, Key="models/breast-cancer/aliases.json", Body=b'{"aliases": {"champion": 1}}'
    )
    second, body = call(function, load_event("predict_single"), lambda_context)

    assert (first, second) == (503, 503)
    assert body["code"] == "model_unavailable"


@pytest.mark.usefixtures("champion")
@pytest.mark.parametrize("fault", ["tampered-artifact", "missing-registry-bucket"])
def test_503_bodies_do_not_leak_internals(aws, cfg, predict_function, lambda_context, fault: str):
    settings: dict[str, Any] = {}
    if fault == "tampered-artifact":
        aws.put_object(Bucket=cfg.registry_bucket, Key="models/breast-cancer/versions/1/model.onnx", Body=b"x")
    else:
        settings["registry_bucket"] = "mlops-local-no-such-registry"
    function = predict_function(**settings)

    status, body = call(function, load_event("predict_single"), lambda_context)
    health_status, health = call(function, load_event("health"), lambda_context)

    assert (status, health_status) == (503, 503)
    assert_no_leak(body)
    assert_no_leak(health)
    assert "mlops-local" not in json.dumps(body) + json.dumps(health)


def test_unknown_route_is_404_and_wrong_method_405(champion, predict_function, lambda_context):
    function = predict_function()

    status, body = call(function, route("predict_single", "POST", "/predictions"), lambda_context)
    assert (status, body["code"]) == (404, "not_found")
    assert body["errors"] == [{"field": "path", "reason": "unknown path"}]

    status, body = call(function, route("health", "DELETE", "/model"), lambda_context)
    assert (status, body["code"]) == (405, "method_not_allowed")
    assert body["errors"] == [{"field": "method", "reason": "use GET"}]
