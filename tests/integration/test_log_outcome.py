"""The log-outcome function: ground truth checked against the champion's task, stored once, confirmed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.adapters.outcomes import S3OutcomeStore
from functions.config import stage_config
from functions.handlers.log_outcome import LogOutcomeFunction
from tests.events import event_body, load_event, request_id, response_json, route, with_body, with_headers

NAME = "breast-cancer"
SAMPLE_IDS = [o["request_id"] for o in event_body(load_event("log_outcome"))["outcomes"]]


def call(function: LogOutcomeFunction, event: dict[str, Any], context: Any) -> tuple[int, Any]:
    response = function.handle(event, context)
    return response["statusCode"], response_json(response)


def store(aws: Any, cfg: Any) -> S3OutcomeStore:
    return S3OutcomeStore(aws, cfg.data_bucket, cfg.outcomes_prefix)


def test_outcomes_are_accepted_and_stored(champion, aws, cfg, outcome_function, lambda_context):
    event = load_event("log_outcome")

    status, body = call(outcome_function(), event, lambda_context)

    assert status == 200
    assert body == {"accepted": 3, "duplicate_batch": False, "model_name": NAME, "request_id": request_id(event)}
    assert store(aws, cfg).read_all(NAME) == dict.fromkeys(SAMPLE_IDS, 0)
    keys = [o["Key"] for o in aws.list_objects_v2(Bucket=cfg.data_bucket, Prefix="outcomes/")["Contents"]]
    assert len(keys) == 1
    assert keys[0].startswith(f"outcomes/{NAME}/dt={datetime.now(UTC):%Y-%m-%d}/")  # written just now


def test_resending_a_batch_is_idempotent(champion, aws, cfg, outcome_function, lambda_context):
    function = outcome_function()

    first = call(function, load_event("log_outcome"), lambda_context)
    again = call(function, load_event("log_outcome"), lambda_context)
    reordered = event_body(load_event("log_outcome"))
    reordered["outcomes"].reverse()
    third = call(function, with_body("log_outcome", reordered), lambda_context)

    assert [r[1]["duplicate_batch"] for r in (first, again, third)] == [False, True, True]
    assert [r[1]["accepted"] for r in (first, again, third)] == [3, 3, 3]
    assert store(aws, cfg).read_all(NAME) == dict.fromkeys(SAMPLE_IDS, 0)
    assert len(aws.list_objects_v2(Bucket=cfg.data_bucket, Prefix="outcomes/")["Contents"]) == 1


def test_overlapping_batches_are_read_back_once_per_request_id(champion, aws, cfg, outcome_function, lambda_context):
    function = outcome_function()
    call(function, load_event("log_outcome"), lambda_context)
    overlap = {"outcomes": [{"request_id": SAMPLE_IDS[0], "actual": 0}, {"request_id": "r-new-0", "actual": 1}]}

    status, body = call(function, with_body("log_outcome", overlap), lambda_context)

    assert (status, body["accepted"], body["duplicate_batch"]) == (200, 2, False)
    outcomes = store(aws, cfg).read_all(NAME)
    assert outcomes == {**dict.fromkeys(SAMPLE_IDS, 0), "r-new-0": 1}


def test_a_corrected_outcome_wins_when_received_later(aws, cfg):
    outcomes = store(aws, cfg)
    outcomes.put_batch(NAME, [("r-1", 0)], received_at=datetime(2026, 11, 23, 10, tzinfo=UTC))
    outcomes.put_batch(NAME, [("r-1", 1)], received_at=datetime(2026, 11, 24, 9, tzinfo=UTC))
    outcomes.put_batch(NAME, [("r-2", 1)], received_at=datetime(2026, 11, 22, 9, tzinfo=UTC))

    assert outcomes.read_all(NAME) == {"r-1": 1, "r-2": 1}
    assert outcomes.read_all("other-model") == {}


def test_the_single_outcome_form_is_accepted(champion, aws, cfg, outcome_function, lambda_context):
    event = with_body("log_outcome", {"request_id": "r-1-0", "actual": 1})

    status, body = call(outcome_function(), event, lambda_context)

    assert (status, body["accepted"]) == (200, 1)
    assert store(aws, cfg).read_all(NAME) == {"r-1-0": 1}


BAD_OUTCOMES = [
    pytest.param(
        {"outcomes": [{"request_id": "r-0", "actual": 0}, {"request_id": "r-1", "actual": "1"}]},
        [("actual", 1)],
        id="string-for-int-class",
    ),
    pytest.param({"outcomes": [{"request_id": "r-0", "actual": True}]}, [("actual", 0)], id="boolean-for-int-class"),
    pytest.param({"outcomes": [{"request_id": "r-0", "actual": 7}]}, [("actual", 0)], id="unknown-class"),
    pytest.param({"outcomes": [{"request_id": "r 0", "actual": 0}]}, [("request_id", 0)], id="bad-request-id"),
    pytest.param({"outcomes": [{"request_id": "r-0", "actual": 0, "x": 1}]}, [("x", 0)], id="unknown-field"),
    pytest.param(
        {"outcomes": [{"request_id": "r-0", "actual": 0}, {"request_id": "r-0", "actual": 1}]},
        [("request_id", 1)],
        id="conflicting-duplicate",
    ),
    pytest.param({"request_id": {}, "actual": 0}, [("request_id", None)], id="object-request-id"),
    pytest.param({"outcomes": [{"request_id": ["r-0"], "actual": 0}]}, [("request_id", 0)], id="array-request-id"),
    pytest.param({"outcomes": []}, [("outcomes", None)], id="empty"),
    pytest.param({"outcomes": "r-0"}, [("outcomes", None)], id="not-an-array"),
    pytest.param([{"request_id": "r-0", "actual": 0}], [("body", None)], id="body-not-an-object"),
]


@pytest.mark.usefixtures("champion")
@pytest.mark.parametrize(("doc", "fields"), BAD_OUTCOMES)
def test_bad_outcomes_are_422_naming_field_and_row(
    aws, outcome_function, lambda_context, doc: Any, fields: list[tuple[str, int | None]]
):
    status, body = call(outcome_function(), with_body("log_outcome", doc), lambda_context)

    assert status == 422
    assert body["code"] == "validation_error"
    assert [(e["field"], e.get("row")) for e in body["errors"]] == fields
    assert store(aws, stage_config("local")).read_all(NAME) == {}  # nothing of a rejected batch is stored


def test_too_many_outcomes_is_422(champion, outcome_function, lambda_context):
    doc = {"outcomes": [{"request_id": f"r-{i}", "actual": 0} for i in range(3)]}

    status, body = call(outcome_function(max_outcomes=2), with_body("log_outcome", doc), lambda_context)

    assert status == 422
    assert body["errors"] == [{"field": "outcomes", "reason": "at most 2 outcomes per request, got 3"}]


@pytest.mark.parametrize(
    ("event", "status", "code"),
    [
        pytest.param(with_body("log_outcome", "{not json", raw=True), 400, "malformed_json", id="malformed"),
        pytest.param(with_body("log_outcome", "", raw=True), 400, "malformed_json", id="empty"),
        pytest.param(
            with_headers(load_event("log_outcome"), **{"Content-Type": "text/csv"}),
            415,
            "unsupported_media_type",
            id="csv",
        ),
        pytest.param(route("log_outcome", "POST", "/outcome"), 404, "not_found", id="unknown-route"),
        pytest.param(route("log_outcome", "GET", "/outcomes"), 405, "method_not_allowed", id="wrong-method"),
    ],
)
@pytest.mark.usefixtures("champion")
def test_bad_requests(outcome_function, lambda_context, event: dict[str, Any], status: int, code: str):
    got_status, body = call(outcome_function(), event, lambda_context)

    assert (got_status, body["code"]) == (status, code)
    assert body["errors"]


def test_an_oversized_body_is_413(champion, outcome_function, lambda_context):
    doc = {"outcomes": [{"request_id": f"request-{i:04d}", "actual": 0} for i in range(40)]}
    assert len(json.dumps(doc)) > 1024

    status, body = call(outcome_function(max_body_bytes=1024), with_body("log_outcome", doc), lambda_context)

    assert (status, body["code"]) == (413, "payload_too_large")


def test_no_model_is_503(aws, cfg, outcome_function, lambda_context):
    status, body = call(outcome_function(), load_event("log_outcome"), lambda_context)

    assert (status, body["code"]) == (503, "model_unavailable")
    assert store(aws, cfg).read_all(NAME) == {}


def test_a_failed_write_is_never_reported_as_accepted_and_is_a_503_to_retry(
    champion, aws, cfg, outcome_function, lambda_context
):
    function = outcome_function(data_bucket="mlops-local-no-such-data")
    response = function.handle(load_event("log_outcome"), lambda_context)

    assert response["statusCode"] == 503
    multi = response.get("multiValueHeaders") or {}  # the REST resolver answers multi-value headers
    assert {**response.get("headers", {}), **{k: v[-1] for k, v in multi.items()}}["Retry-After"] == "5"
    assert response_json(response) == {
        "code": "storage_error",
        "message": "storage is unavailable; nothing was stored; retry after the Retry-After delay",
        "errors": [],
        "request_id": request_id(load_event("log_outcome")),
    }


def test_regression_outcomes_are_numbers(train_model, aws, cfg, outcome_function, lambda_context):
    train_model("diabetes")
    function = outcome_function(model_name="diabetes")
    good = {"outcomes": [{"request_id": "d-0", "actual": 151.0}, {"request_id": "d-1", "actual": 75}]}
    bad = {"outcomes": [{"request_id": "d-0", "actual": "151"}, {"request_id": "d-1", "actual": None}]}

    good_status, good_body = call(function, with_body("log_outcome", good), lambda_context)
    bad_status, bad_body = call(function, with_body("log_outcome", bad), lambda_context)
    nan_status, _ = call(
        function, with_body("log_outcome", '{"request_id": "d-2", "actual": NaN}', raw=True), lambda_context
    )

    assert (good_status, good_body["accepted"], good_body["model_name"]) == (200, 2, "diabetes")
    assert bad_status == 422
    assert [(e["field"], e["row"]) for e in bad_body["errors"]] == [("actual", 0), ("actual", 1)]
    assert nan_status == 422
    assert store(aws, cfg).read_all("diabetes") == {"d-0": 151.0, "d-1": 75}


def test_multiclass_outcomes_are_the_class_labels(train_model, outcome_function, lambda_context):
    train_model("iris")
    function = outcome_function(model_name="iris")

    ok, _ = call(function, with_body("log_outcome", {"request_id": "i-0", "actual": "setosa"}), lambda_context)
    bad, body = call(function, with_body("log_outcome", {"request_id": "i-1", "actual": 0}), lambda_context)

    assert (ok, bad) == (200, 422)
    assert (
        body["errors"][0]["reason"] == "must be one of the model's classes ('setosa', 'versicolor', 'virginica'), got 0"
    )
