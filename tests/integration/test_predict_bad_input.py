"""Every kind of bad request to the predict function gets the right 4xx and names the field (and row)."""

from __future__ import annotations

import base64
import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.events import event_body, load_event, request_id, response_json, route, with_headers

FIRST_ROW: dict[str, float] = event_body(load_event("predict_single"))["features"]
SMALL_BODY_LIMIT = 1024  # the smallest MAX_BODY_BYTES the settings accept


def row(**changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(FIRST_ROW)
    for name, value in changes.items():
        if value is None and name.startswith("drop_"):
            del out[name.removeprefix("drop_")]
        else:
            out[name] = value
    return out


def columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in FIRST_ROW}


@dataclass
class Case:
    """One bad request: what is sent, and the status, code and (field, row) errors it must get back."""

    body: Any = None
    raw: str | None = None
    is_base64: bool = False
    base64_bytes: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    path: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    status: int = 422
    code: str = "validation_error"
    errors: list[tuple[str, int | None]] = field(default_factory=list)

    def event(self) -> dict[str, Any]:
        event = route("predict_single", "POST", self.path) if self.path else load_event("predict_single")
        if self.base64_bytes is not None:
            event["body"] = base64.b64encode(self.base64_bytes).decode()
            event["isBase64Encoded"] = True
        elif self.raw is not None:
            event["body"] = self.raw
            event["isBase64Encoded"] = self.is_base64
        elif self.body is not None:
            event["body"] = json.dumps(self.body)
        return with_headers(event, **self.headers)


BODY = [("body", None)]
CASES = [
    pytest.param(
        Case(raw='{"features": {"mean_radius": 1', status=400, code="malformed_json", errors=BODY), id="malformed-json"
    ),
    pytest.param(Case(raw="", status=400, code="malformed_json", errors=BODY), id="empty-body"),
    pytest.param(Case(raw="   ", status=400, code="malformed_json", errors=BODY), id="blank-body"),
    pytest.param(Case(body=[FIRST_ROW], errors=BODY), id="body-is-an-array"),
    pytest.param(Case(body="features", errors=BODY), id="body-is-a-string"),
    pytest.param(Case(raw="null", errors=BODY), id="body-is-null"),
    pytest.param(Case(body={}, errors=BODY), id="no-form-key"),
    pytest.param(Case(body={"features": FIRST_ROW, "rows": [FIRST_ROW]}, errors=BODY), id="two-form-keys"),
    pytest.param(
        Case(body={"features": FIRST_ROW, "model_version": 2}, errors=[("model_version", None)]),
        id="unknown-top-level-key",
    ),
    pytest.param(
        Case(body={"features": row(drop_mean_radius=None)}, errors=[("mean_radius", None)]), id="missing-feature"
    ),
    pytest.param(Case(body={"features": row(colour=1.0)}, errors=[("colour", None)]), id="unknown-feature"),
    pytest.param(
        Case(body={"features": row(mean_area="1001.0")}, errors=[("mean_area", None)]), id="string-for-number"
    ),
    pytest.param(Case(body={"features": row(mean_area=True)}, errors=[("mean_area", None)]), id="boolean-for-number"),
    pytest.param(Case(body={"features": row(mean_area=None)}, errors=[("mean_area", None)]), id="null"),
    pytest.param(Case(body={"features": row(mean_area=math.nan)}, errors=[("mean_area", None)]), id="NaN"),
    pytest.param(Case(body={"features": row(mean_area=math.inf)}, errors=[("mean_area", None)]), id="Infinity"),
    pytest.param(Case(body={"features": row(mean_area=-math.inf)}, errors=[("mean_area", None)]), id="-Infinity"),
    pytest.param(
        Case(
            raw='{"features": ' + json.dumps(FIRST_ROW).replace("1001.0", "1" + "0" * 400) + "}",
            errors=[("mean_area", None)],
        ),
        id="huge-int",
    ),
    pytest.param(Case(body={"features": [FIRST_ROW]}, errors=[("features", None)]), id="features-not-an-object"),
    pytest.param(
        Case(
            body={"rows": [FIRST_ROW, row(mean_area="x"), row(mean_texture=False)]},
            errors=[("mean_texture", 2), ("mean_area", 1)],
        ),
        id="bad-values-in-rows-1-and-2",
    ),
    pytest.param(Case(body={"rows": []}, errors=[("rows", None)]), id="empty-rows"),
    pytest.param(Case(body={"rows": [FIRST_ROW] * 1001}, errors=[("rows", None)]), id="1001-rows"),
    pytest.param(
        Case(body={"rows": [FIRST_ROW] * 3}, settings={"max_batch_rows": 2}, errors=[("rows", None)]),
        id="more-rows-than-configured",
    ),
    pytest.param(Case(body={"rows": FIRST_ROW}, errors=[("rows", None)]), id="rows-not-a-list"),
    pytest.param(Case(body={"rows": [FIRST_ROW, [1.0, 2.0]]}, errors=[("rows", 1)]), id="row-not-an-object"),
    pytest.param(
        Case(body={"rows": [FIRST_ROW, row(drop_worst_area=None)]}, errors=[("worst_area", 1)]),
        id="missing-feature-in-row-1",
    ),
    pytest.param(
        Case(body={"columns": {**columns([FIRST_ROW] * 2), "mean_radius": [1.0]}}, errors=[("columns", None)]),
        id="unequal-column-lengths",
    ),
    pytest.param(
        Case(body={"columns": columns([FIRST_ROW, row(mean_area=None)])}, errors=[("mean_area", 1)]),
        id="null-in-column-row-1",
    ),
    pytest.param(
        Case(body={"columns": {**columns([FIRST_ROW]), "extra": [1.0]}}, errors=[("columns.extra", None)]),
        id="unknown-column",
    ),
    pytest.param(Case(body={"columns": [FIRST_ROW]}, errors=[("columns", None)]), id="columns-not-an-object"),
    pytest.param(
        Case(
            body={"rows": [FIRST_ROW] * 2},
            settings={"max_body_bytes": SMALL_BODY_LIMIT},
            status=413,
            code="payload_too_large",
            errors=BODY,
        ),
        id="oversized-body",
    ),
    pytest.param(
        Case(
            base64_bytes=json.dumps({"rows": [FIRST_ROW] * 2}).encode(),
            settings={"max_body_bytes": SMALL_BODY_LIMIT},
            status=413,
            code="payload_too_large",
            errors=BODY,
        ),
        id="oversized-base64-body",
    ),
    pytest.param(
        Case(
            body={"features": FIRST_ROW},
            headers={"Content-Type": "text/plain"},
            status=415,
            code="unsupported_media_type",
            errors=[("Content-Type", None)],
        ),
        id="text-plain",
    ),
    pytest.param(
        Case(
            body={"features": FIRST_ROW},
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            status=415,
            code="unsupported_media_type",
            errors=[("Content-Type", None)],
        ),
        id="form-encoded",
    ),
    pytest.param(Case(raw="not base64 at all", is_base64=True, errors=BODY), id="invalid-base64"),
    pytest.param(Case(base64_bytes=b'{"features": "\xff\xfe"}', errors=BODY), id="invalid-utf8"),
    pytest.param(
        Case(body={"features": FIRST_ROW}, path="/predictions", status=404, code="not_found", errors=[("path", None)]),
        id="unknown-route",
    ),
]


@pytest.mark.parametrize("case", CASES)
def test_bad_requests_get_a_4xx_naming_the_field(champion, predict_function, lambda_context, case: Case):
    event = case.event()

    response = predict_function(**case.settings).handle(event, lambda_context)

    body = response_json(response)
    assert response["statusCode"] == case.status
    assert body["code"] == case.code
    assert isinstance(body["message"], str) and body["message"]
    assert body["request_id"] == request_id(event)
    got = [(e["field"], e.get("row")) for e in body["errors"]]
    assert sorted(got, key=str) == sorted(case.errors, key=str)
    assert all(e["reason"] for e in body["errors"])


def test_the_error_reasons_say_what_is_wrong(champion, predict_function, lambda_context):
    event = load_event("predict_invalid")

    response = predict_function().handle(event, lambda_context)

    assert response["statusCode"] == 422
    assert response_json(response) == {
        "code": "validation_error",
        "message": "1 invalid field(s)",
        "errors": [{"field": "mean_radius", "reason": "must be a number, got a string"}],
        "request_id": request_id(event),
    }


def test_json_content_type_variants_are_accepted(champion, predict_function, lambda_context):
    function = predict_function()
    for content_type in ("application/json; charset=utf-8", "APPLICATION/JSON", "application/vnd.api+json"):
        event = with_headers(load_event("predict_single"), **{"Content-Type": content_type})
        assert function.handle(event, lambda_context)["statusCode"] == 200, content_type
    no_header = load_event("predict_single")
    del no_header["headers"]["Content-Type"], no_header["multiValueHeaders"]["Content-Type"]
    assert function.handle(no_header, lambda_context)["statusCode"] == 200


def test_a_base64_encoded_json_body_is_accepted(champion, predict_function, lambda_context):
    event = load_event("predict_single")
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True

    response = predict_function().handle(event, lambda_context)

    assert response["statusCode"] == 200
    assert response_json(response)["predictions"] == [0]


def test_a_body_at_the_limit_is_accepted(champion, predict_function, lambda_context):
    body = json.dumps({"features": FIRST_ROW})
    event = load_event("predict_single")
    event["body"] = body + " " * (SMALL_BODY_LIMIT - len(body))

    response = predict_function(max_body_bytes=SMALL_BODY_LIMIT).handle(event, lambda_context)

    assert response["statusCode"] == 200


def test_body_limit_counts_bytes_not_characters(champion, predict_function, lambda_context):
    event = load_event("predict_single")
    event["body"] = '{"note": "' + "\u20ac" * (SMALL_BODY_LIMIT - 12) + '"}'  # the euro sign: 3 bytes in UTF-8
    assert len(event["body"]) == SMALL_BODY_LIMIT and len(event["body"].encode()) > 2 * SMALL_BODY_LIMIT

    response = predict_function(max_body_bytes=SMALL_BODY_LIMIT).handle(event, lambda_context)

    assert response["statusCode"] == 413
