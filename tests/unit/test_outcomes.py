"""Ground-truth outcomes are checked against the model's task and classes before they are stored."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.domain.outcomes import parse_outcomes
from functions.errors import ValidationError

CARDS = {
    "int-classes": {"task": "binary_classification", "classes": [0, 1]},
    "str-classes": {"task": "multiclass_classification", "classes": ["setosa", "versicolor", "virginica"]},
    "regression": {"task": "regression", "classes": None},
}


def batch(*actuals: Any) -> dict[str, Any]:
    return {"outcomes": [{"request_id": f"req-{i}", "actual": a} for i, a in enumerate(actuals)]}


ACCEPTED = [
    pytest.param("int-classes", batch(0, 1, 1), [("req-0", 0), ("req-1", 1), ("req-2", 1)], id="int-classes"),
    pytest.param("str-classes", batch("virginica"), [("req-0", "virginica")], id="str-classes"),
    pytest.param(
        "regression",
        batch(151.0, 75, -2.5),
        [("req-0", 151.0), ("req-1", 75), ("req-2", -2.5)],
        id="regression-int-and-float",
    ),
    pytest.param("int-classes", {"request_id": "abc-1", "actual": 1}, [("abc-1", 1)], id="single-form"),
    pytest.param(
        "int-classes",
        {"outcomes": [{"request_id": "r-1", "actual": 1}, {"request_id": "r-1", "actual": 1}]},
        [("r-1", 1)],
        id="exact-duplicate-kept-once",
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [{"request_id": "A" + "b" * 127, "actual": 0}]},
        [("A" + "b" * 127, 0)],
        id="longest-request-id",
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [{"request_id": "6f1c8a0e-2b7d.x:1_0", "actual": 0}]},
        [("6f1c8a0e-2b7d.x:1_0", 0)],
        id="request-id-punctuation",
    ),
]


@pytest.mark.parametrize(("card", "doc", "expected"), ACCEPTED)
def test_accepted(minimal_card, card: str, doc: dict[str, Any], expected: list[tuple[str, Any]]):
    out = parse_outcomes(doc, minimal_card(**CARDS[card]), max_outcomes=3)

    assert out == expected
    assert [type(a) for _, a in out] == [type(a) for _, a in expected]


INT_CLASS_REASON = "must be one of the model's classes (0, 1), got "
REJECTED = [
    pytest.param("int-classes", batch("1"), [("actual", 0, INT_CLASS_REASON + "'1'")], id="int-class-as-string"),
    pytest.param("int-classes", batch(True), [("actual", 0, INT_CLASS_REASON + "True")], id="int-class-as-true"),
    pytest.param("int-classes", batch(0, False), [("actual", 1, INT_CLASS_REASON + "False")], id="false-in-row-1"),
    pytest.param("int-classes", batch(2), [("actual", 0, INT_CLASS_REASON + "2")], id="not-a-class"),
    pytest.param("int-classes", batch(None), [("actual", 0, INT_CLASS_REASON + "None")], id="null"),
    pytest.param(
        "str-classes",
        batch("Setosa", 0),
        [
            ("actual", 0, "must be one of the model's classes ('setosa', 'versicolor', 'virginica'), got 'Setosa'"),
            ("actual", 1, "must be one of the model's classes ('setosa', 'versicolor', 'virginica'), got 0"),
        ],
        id="str-classes",
    ),
    pytest.param(
        "regression",
        batch("151.0"),
        [("actual", 0, "must be a number for a regression model, got a string")],
        id="regression-string",
    ),
    pytest.param(
        "regression",
        batch(True),
        [("actual", 0, "must be a number for a regression model, got a boolean")],
        id="regression-bool",
    ),
    pytest.param(
        "regression",
        batch(None),
        [("actual", 0, "must be a number for a regression model, got null")],
        id="regression-null",
    ),
    pytest.param("regression", batch(math.nan), [("actual", 0, "must be a finite number")], id="regression-nan"),
    pytest.param("regression", batch(1.0, -math.inf), [("actual", 1, "must be a finite number")], id="regression-inf"),
    pytest.param(
        "regression",
        batch(10**400),
        [("actual", 0, "must be a finite number")],
        id="regression-huge-int",
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [{"request_id": "r-1", "actual": 1}, {"request_id": "r-1", "actual": 0}]},
        [("request_id", 1, "appears twice in this request with different actual values")],
        id="conflicting-duplicate",
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [{"request_id": "r-1", "actual": 1, "note": "x"}]},
        [("note", 0, "unknown field")],
        id="unknown-record-field",
    ),
    pytest.param(
        "int-classes", {"outcomes": [], "model": "x"}, [("model", None, "unknown field")], id="unknown-top-level-field"
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [{"actual": 1}]},
        [("request_id", 0, "missing required field")],
        id="missing-request-id",
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [{"request_id": "r-1"}]},
        [("actual", 0, "missing required field")],
        id="missing-actual",
    ),
    pytest.param(
        "int-classes", {"request_id": "r-1"}, [("actual", None, "missing required field")], id="single-form-has-no-row"
    ),
    pytest.param(
        "int-classes",
        {"outcomes": [7]},
        [("outcomes", 0, "each outcome must be an object, got int")],
        id="record-not-object",
    ),
    pytest.param(
        "int-classes",
        {"outcomes": {"request_id": "r-1"}},
        [("outcomes", None, "must be an array, got an object")],
        id="outcomes-not-array",
    ),
    pytest.param(
        "int-classes", {"outcomes": []}, [("outcomes", None, "must contain at least one outcome")], id="empty"
    ),
    pytest.param(
        "int-classes", batch(0, 1, 0, 1), [("outcomes", None, "at most 3 outcomes per request, got 4")], id="too-many"
    ),
]


@pytest.mark.parametrize(("card", "doc", "expected"), REJECTED)
def test_rejected(minimal_card, card: str, doc: dict[str, Any], expected: list[tuple[str, int | None, str]]):
    with pytest.raises(ValidationError) as exc:
        parse_outcomes(doc, minimal_card(**CARDS[card]), max_outcomes=3)

    assert [(e.field, e.row, e.reason) for e in exc.value.errors] == expected


REQUEST_ID_REASON = "must be a request id returned by /predict (1-128 of A-Z a-z 0-9 . _ : -)"


@pytest.mark.parametrize(
    "request_id",
    [
        pytest.param("", id="empty"),
        pytest.param("has space", id="space"),
        pytest.param("-leading-dash", id="leading-dash"),
        pytest.param("a" * 129, id="too-long"),
        pytest.param("r/1", id="slash"),
        pytest.param("r\n1", id="newline"),
        pytest.param(123, id="number"),
        pytest.param(None, id="null"),
        pytest.param({}, id="object"),
        pytest.param({"id": "r-1"}, id="object-with-keys"),
        pytest.param([], id="array"),
        pytest.param(["r-1"], id="array-of-id"),
        pytest.param(True, id="boolean"),
        pytest.param(
            "r-1\n",
            id="trailing-newline",
        ),
    ],
)
def test_bad_request_ids(minimal_card, request_id: Any):
    with pytest.raises(ValidationError) as exc:
        parse_outcomes({"outcomes": [{"request_id": request_id, "actual": 1}]}, minimal_card(), max_outcomes=3)

    assert [(e.field, e.row, e.reason) for e in exc.value.errors] == [("request_id", 0, REQUEST_ID_REASON)]


def test_every_bad_record_is_reported_up_to_a_bound(minimal_card):
    doc = {"outcomes": [{"request_id": f"r-{i}", "actual": "x"} for i in range(30)]}

    with pytest.raises(ValidationError) as exc:
        parse_outcomes(doc, minimal_card(), max_outcomes=100)

    assert [e.row for e in exc.value.errors] == list(range(20))


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
RECORD_KEYS = st.sampled_from(["request_id", "actual", "outcomes", "other"])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    doc=st.dictionaries(RECORD_KEYS | st.text(max_size=8), JSON_VALUES, max_size=4)
    | st.fixed_dictionaries({"outcomes": st.lists(st.dictionaries(RECORD_KEYS, JSON_VALUES, max_size=3), max_size=4)}),
    card=st.sampled_from(sorted(CARDS)),
)
def test_any_json_body_is_accepted_or_refused_with_named_fields(minimal_card, doc: dict[str, Any], card: str):
    try:
        accepted = parse_outcomes(doc, minimal_card(**CARDS[card]), max_outcomes=3)
    except ValidationError as exc:
        assert exc.errors and all(isinstance(e.field, str) and e.reason for e in exc.errors)  # a key may be ""
    else:
        assert all(type(rid) is str for rid, _ in accepted)
