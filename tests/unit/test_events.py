"""The sample events in ``events/`` are real-shape and agree with each other and with the data."""

from __future__ import annotations

import csv
import json
import socket
from itertools import islice
from pathlib import Path

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, EventBridgeEvent

from tests.events import EVENTS_DIR, event_body, load_event

API_EVENTS = {
    "predict_single": ("POST", "/predict"),
    "predict_batch": ("POST", "/predict"),
    "predict_columns": ("POST", "/predict"),
    "predict_invalid": ("POST", "/predict"),
    "log_outcome": ("POST", "/outcomes"),
    "health": ("GET", "/health"),
    "model": ("GET", "/model"),
}
BUS_EVENTS = {
    "schedule": ("Scheduled Event", "aws.events"),
    "model_drift_detected": ("ModelDriftDetected", "mlops"),
}
OPERATOR_EVENTS = {"retrain_operator", "rollout_promote", "rollout_status", "drift_aggregate"}
REST_V1_KEYS = {
    "resource", "path", "httpMethod", "headers", "multiValueHeaders", "queryStringParameters",
    "multiValueQueryStringParameters", "pathParameters", "stageVariables", "requestContext", "body",
    "isBase64Encoded",
}  # fmt: skip
REQUEST_CONTEXT_KEYS = {
    "accountId", "apiId", "stage", "requestId", "resourcePath", "httpMethod", "path", "identity",
    "requestTimeEpoch", "requestTime", "domainName", "protocol",
}  # fmt: skip
DATA = Path(__file__).resolve().parents[2] / "data"


def test_every_event_file_is_valid_json_and_known():
    names = sorted(p.stem for p in EVENTS_DIR.glob("*.json"))

    for name in names:
        json.loads((EVENTS_DIR / f"{name}.json").read_text())
    assert set(names) == set(API_EVENTS) | set(BUS_EVENTS) | set(OPERATOR_EVENTS)


@pytest.mark.parametrize("name", sorted(BUS_EVENTS))
def test_eventbridge_events_have_the_eventbridge_shape(name: str):
    event = EventBridgeEvent(load_event(name))

    assert (event.detail_type, event.source) == BUS_EVENTS[name]
    assert isinstance(event.detail, dict)


def test_operator_events_parse_as_their_functions_commands():
    from functions.handlers.drift_check import parse_event
    from functions.handlers.retrain import OperatorEvent
    from functions.handlers.rollout import OperatorCommand
    from functions.services.drift_hours import AGGREGATE_EVENT

    assert load_event("drift_aggregate") == AGGREGATE_EVENT  # what the aggregation schedule sends
    assert parse_event(load_event("drift_aggregate")).action == "aggregate"
    assert OperatorEvent.model_validate(load_event("retrain_operator")).trigger == "operator"
    assert OperatorCommand.model_validate(load_event("rollout_promote")).action == "promote"
    assert OperatorCommand.model_validate(load_event("rollout_status")).action == "status"


@pytest.mark.parametrize("name", sorted(API_EVENTS))
def test_api_gateway_events_have_the_rest_v1_shape(name: str):
    raw = load_event(name)
    event = APIGatewayProxyEvent(raw)
    method, path = API_EVENTS[name]

    assert REST_V1_KEYS <= set(raw)
    assert REQUEST_CONTEXT_KEYS <= set(raw["requestContext"])
    assert (event.http_method, event.path, event.resource) == (method, path, path)
    assert event.request_context.resource_path == path
    assert event.request_context.http_method == method
    assert event.request_context.identity.source_ip == "203.0.113.17"
    assert raw["multiValueHeaders"] == {k: [v] for k, v in raw["headers"].items()}
    assert event.is_base64_encoded is False
    if method == "POST":
        assert raw["headers"]["Content-Type"] == "application/json"
        assert isinstance(event_body(raw), dict)
    else:
        assert raw["body"] is None and "Content-Type" not in raw["headers"]


def test_request_ids_are_distinct():
    ids = [load_event(name)["requestContext"]["requestId"] for name in API_EVENTS]
    assert len(set(ids)) == len(ids)


def test_predict_events_carry_the_first_rows_of_the_data():
    with (DATA / "breast_cancer.csv").open() as f:
        rows = [{k: float(v) for k, v in r.items() if k != "target"} for r in islice(csv.DictReader(f), 3)]

    assert event_body(load_event("predict_single")) == {"features": rows[0]}
    assert event_body(load_event("predict_batch")) == {"rows": rows}
    assert event_body(load_event("predict_columns")) == {"columns": {k: [r[k] for r in rows] for k in rows[0]}}
    invalid = event_body(load_event("predict_invalid"))["features"]
    assert {k for k in invalid if invalid[k] != rows[0][k]} == {"mean_radius"}
    assert invalid["mean_radius"] == "17.99"


def test_outcomes_refer_to_the_batch_request_ids():
    batch_id = load_event("predict_batch")["requestContext"]["requestId"]
    outcomes = event_body(load_event("log_outcome"))["outcomes"]

    assert [o["request_id"] for o in outcomes] == [f"{batch_id}-{i}" for i in range(3)]
    assert [o["actual"] for o in outcomes] == [0, 0, 0]  # the first three rows are malignant


def test_schedule_is_an_eventbridge_scheduled_event():
    event = EventBridgeEvent(load_event("schedule"))

    assert event.detail_type == "Scheduled Event"
    assert event.source == "aws.events"
    assert event.region == "us-east-1"
    assert event.resources[0].startswith("arn:aws:events:us-east-1:123456789012:rule/")
    assert event.detail == {}


def test_unit_tests_are_marked_and_cannot_open_sockets(request: pytest.FixtureRequest):
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("integration") is None
    with pytest.raises(RuntimeError, match="must not open network connections"):
        socket.create_connection(("127.0.0.1", 9))
    with pytest.raises(RuntimeError, match="must not open network connections"):
        socket.socket().connect(("127.0.0.1", 9))
