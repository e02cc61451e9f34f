"""Validation of prediction inputs against a feature schema: every way a value can be wrong."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from functions.domain.requests import decode_json, parse_predict_request
from functions.domain.schema import (
    MAX_REPORTED_ERRORS,
    FeatureSchema,
    FeatureSpec,
    OutOfRange,
    validate_columns,
    validate_rows,
)
from functions.errors import FieldError, MalformedJSONError, ValidationError
from tests.events import event_body, load_event

SCHEMA = FeatureSchema(
    features=(
        FeatureSpec(name="age", kind="numeric", minimum=18.0, maximum=90.0),
        FeatureSpec(name="income", kind="numeric", minimum=0.0, maximum=250_000.0),
        FeatureSpec(name="plan", kind="categorical", categories=("basic", "pro")),
    )
)
NUMERIC = FeatureSchema(features=SCHEMA.features[:2])
GOOD = {"age": 30, "income": 52_000.5, "plan": "pro"}
MISSING = object()


def row(**changes: Any) -> dict[str, Any]:
    out = dict(GOOD)
    for name, value in changes.items():
        if value is MISSING:
            del out[name]
        else:
            out[name] = value
    return out


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[str, int | None, str]]:
    return [(e.field, e.row, e.reason) for e in exc.value.errors]


BAD_ROWS = [
    pytest.param([row(age=MISSING)], [("age", 0, "missing required feature")], id="missing"),
    pytest.param([row(colour="red")], [("colour", 0, "unknown feature")], id="unknown"),
    pytest.param(
        [row(age=MISSING, colour="red")],
        [("age", 0, "missing required feature"), ("colour", 0, "unknown feature")],
        id="missing-and-unknown",
    ),
    pytest.param([row(age="30")], [("age", 0, "must be a number, got a string")], id="string"),
    pytest.param([row(age=True)], [("age", 0, "must be a number, got a boolean")], id="true"),
    pytest.param([row(age=False)], [("age", 0, "must be a number, got a boolean")], id="false"),
    pytest.param([row(age=None)], [("age", 0, "must be a number, got null")], id="null"),
    pytest.param([row(age=[30])], [("age", 0, "must be a number, got an array")], id="array"),
    pytest.param([row(age={"v": 30})], [("age", 0, "must be a number, got an object")], id="object"),
    pytest.param([row(income=math.nan)], [("income", 0, "must be a finite number, got nan")], id="nan"),
    pytest.param([row(income=math.inf)], [("income", 0, "must be a finite number, got inf")], id="inf"),
    pytest.param([row(income=-math.inf)], [("income", 0, "must be a finite number, got -inf")], id="-inf"),
    pytest.param([row(income=10**400)], [("income", 0, f"must be a finite number, got {10**400!r}")], id="huge-int"),
    pytest.param(
        [row(income=10**400, age="x")],
        [("age", 0, "must be a number, got a string"), ("income", 0, f"must be a finite number, got {10**400!r}")],
        id="huge-int-beside-a-string",
    ),
    pytest.param(
        [row(), row(income=math.nan, age=True)],
        [("age", 1, "must be a number, got a boolean"), ("income", 1, "must be a finite number, got nan")],
        id="second-row",
    ),
    pytest.param(
        [row(plan="gold")], [("plan", 0, "unknown category 'gold'; expected one of: basic, pro")], id="category"
    ),
    pytest.param([row(plan="Pro")], [("plan", 0, "unknown category 'Pro'; expected one of: basic, pro")], id="case"),
    pytest.param([row(plan=1)], [("plan", 0, "must be a string category, got int")], id="category-int"),
    pytest.param([row(plan=True)], [("plan", 0, "must be a string category, got a boolean")], id="category-bool"),
    pytest.param([row(plan=None)], [("plan", 0, "must be a string category, got null")], id="category-null"),
    pytest.param([row(), 7], [("rows", 1, "each row must be an object, got int")], id="row-not-object"),
    pytest.param([None], [("rows", 0, "each row must be an object, got null")], id="row-null"),
    pytest.param([], [("rows", None, "must contain at least one row")], id="empty"),
    pytest.param([row()] * 4, [("rows", None, "at most 3 rows per request, got 4")], id="oversized"),
]


@pytest.mark.parametrize(("rows", "expected"), BAD_ROWS)
def test_validate_rows_names_each_bad_field_and_row(rows: list[Any], expected: list[tuple[str, int | None, str]]):
    with pytest.raises(ValidationError) as exc:
        validate_rows(SCHEMA, rows, max_rows=3)
    assert errors_of(exc) == expected


def test_validate_rows_builds_columns_and_matrix_in_schema_order():
    batch = validate_rows(SCHEMA, [{"plan": "basic", "income": 10, "age": 40}, row()], max_rows=3)

    assert batch.n_rows == 2
    assert batch.matrix.dtype == object
    assert batch.matrix.tolist() == [[40.0, 10.0, "basic"], [30.0, 52_000.5, "pro"]]
    assert batch.columns["age"].dtype == np.float64
    assert batch.columns["plan"].tolist() == ["basic", "pro"]
    assert batch.out_of_range == []


def test_all_numeric_schema_gives_a_float_matrix():
    batch = validate_rows(NUMERIC, [{"age": 20, "income": 1.5}, {"age": 21.0, "income": 0}], max_rows=2)

    assert batch.matrix.dtype == np.float64
    np.testing.assert_array_equal(batch.matrix, [[20.0, 1.5], [21.0, 0.0]])


def test_out_of_range_values_are_flagged_with_row_and_field_but_accepted():
    rows = [row(), row(age=95), row(age=17.5, income=-1), row(age=18, income=250_000)]

    batch = validate_rows(SCHEMA, rows, max_rows=10)

    assert batch.n_rows == 4
    assert batch.out_of_range == [
        OutOfRange(row=1, field="age", value=95.0),
        OutOfRange(row=2, field="age", value=17.5),
        OutOfRange(row=2, field="income", value=-1.0),
    ]


def test_numeric_feature_without_a_range_never_flags():
    schema = FeatureSchema(features=(FeatureSpec(name="x", kind="numeric"),))

    assert validate_rows(schema, [{"x": -1e300}, {"x": 1e300}], max_rows=2).out_of_range == []


def test_many_bad_rows_report_a_bounded_number_of_errors():
    with pytest.raises(ValidationError) as exc:
        validate_rows(SCHEMA, [row(age="x")] * 50, max_rows=50)

    assert len(exc.value.errors) == MAX_REPORTED_ERRORS
    assert [e.row for e in exc.value.errors] == list(range(MAX_REPORTED_ERRORS))
    assert exc.value.message == f"50 invalid field(s) (first {MAX_REPORTED_ERRORS} shown)"


def test_many_non_finite_values_report_a_bounded_number_of_errors():
    with pytest.raises(ValidationError) as exc:
        validate_columns(NUMERIC, {"age": [math.nan] * 30, "income": [1.0] * 30}, max_rows=30)

    assert len(exc.value.errors) == MAX_REPORTED_ERRORS


# -- columnar form ---------------------------------------------------------------------------

COLUMNS = {"age": [30, 40], "income": [1.0, 2.0], "plan": ["basic", "pro"]}


def columns(**changes: Any) -> dict[str, Any]:
    out = dict(COLUMNS)
    for name, value in changes.items():
        if value is MISSING:
            del out[name]
        else:
            out[name] = value
    return out


BAD_COLUMNS = [
    pytest.param(columns(age=MISSING), [("columns.age", None, "missing required feature")], id="missing"),
    pytest.param(columns(colour=["red", "blue"]), [("columns.colour", None, "unknown feature")], id="unknown"),
    pytest.param(columns(age=30), [("columns.age", None, "must be an array, got int")], id="not-array"),
    pytest.param(columns(age=None), [("columns.age", None, "must be an array, got null")], id="null-column"),
    pytest.param(
        columns(age=[30, 40, 50]),
        [("columns", None, "all columns must have the same length, got lengths [2, 3]")],
        id="unequal-lengths",
    ),
    pytest.param(columns(age=[30, "40"]), [("age", 1, "must be a number, got a string")], id="string-in-row-1"),
    pytest.param(columns(income=[1.0, math.inf]), [("income", 1, "must be a finite number, got inf")], id="inf"),
    pytest.param(
        columns(plan=["basic", "gold"]),
        [("plan", 1, "unknown category 'gold'; expected one of: basic, pro")],
        id="category",
    ),
    pytest.param(
        {"age": [], "income": [], "plan": []}, [("columns", None, "must contain at least one row")], id="empty"
    ),
    pytest.param(
        {"age": [1] * 4, "income": [1] * 4, "plan": ["pro"] * 4},
        [("columns", None, "at most 3 rows per request, got 4")],
        id="oversized",
    ),
    pytest.param([1, 2], [("columns", None, "must be an object, got an array")], id="not-object"),
]


@pytest.mark.parametrize(("cols", "expected"), BAD_COLUMNS)
def test_validate_columns_names_each_bad_field(cols: Any, expected: list[tuple[str, int | None, str]]):
    with pytest.raises(ValidationError) as exc:
        validate_columns(SCHEMA, cols, max_rows=3)
    assert errors_of(exc) == expected


def test_columnar_and_row_forms_build_the_same_batch():
    by_rows = validate_rows(
        SCHEMA, [{"age": 30, "income": 1.0, "plan": "basic"}, {"age": 40, "income": 2.0, "plan": "pro"}], max_rows=3
    )
    by_columns = validate_columns(SCHEMA, COLUMNS, max_rows=3)

    assert by_columns.matrix.tolist() == by_rows.matrix.tolist()
    assert by_columns.n_rows == 2


# -- whole request bodies --------------------------------------------------------------------


def body(doc: Any) -> str:
    return json.dumps(doc)


BAD_BODIES = [
    pytest.param(None, MalformedJSONError, [("body", None)], id="none"),
    pytest.param("", MalformedJSONError, [("body", None)], id="empty"),
    pytest.param('{"features": ', MalformedJSONError, [("body", None)], id="truncated"),
    pytest.param("{'features': {}}", MalformedJSONError, [("body", None)], id="single-quotes"),
    pytest.param("[]", ValidationError, [("body", None)], id="array"),
    pytest.param("null", ValidationError, [("body", None)], id="null"),
    pytest.param('"text"', ValidationError, [("body", None)], id="string"),
    pytest.param("{}", ValidationError, [("body", None)], id="no-form"),
    pytest.param(body({"features": GOOD, "rows": [GOOD]}), ValidationError, [("body", None)], id="two-forms"),
    pytest.param(body({"features": GOOD, "debug": True}), ValidationError, [("debug", None)], id="unknown-key"),
    pytest.param(body({"features": [GOOD]}), ValidationError, [("features", None)], id="features-not-object"),
    pytest.param(body({"rows": GOOD}), ValidationError, [("rows", None)], id="rows-not-array"),
    pytest.param(body({"features": row(age="1")}), ValidationError, [("age", None)], id="bad-feature"),
    pytest.param('{"features": {"age": NaN, "income": 1, "plan": "pro"}}', ValidationError, [("age", None)], id="NaN"),
    pytest.param(
        '{"rows": [{"age": 20, "income": 1, "plan": "pro"}, {"age": -Infinity, "income": 1, "plan": "pro"}]}',
        ValidationError,
        [("age", 1)],
        id="-Infinity",
    ),
]


@pytest.mark.parametrize(("raw", "error", "fields"), BAD_BODIES)
def test_parse_predict_request_rejects(raw: str | None, error: type[Exception], fields: list[tuple[str, int | None]]):
    with pytest.raises(error) as exc:
        parse_predict_request(raw, SCHEMA, max_rows=3)
    assert type(exc.value) is error
    assert [(e.field, e.row) for e in exc.value.errors] == fields


def test_all_three_forms_accepted():
    single = parse_predict_request(body({"features": GOOD}), SCHEMA, 3)
    rows = parse_predict_request(body({"rows": [GOOD, GOOD]}), SCHEMA, 3)
    cols = parse_predict_request(body({"columns": COLUMNS}), SCHEMA, 3)

    assert (single.n_rows, rows.n_rows, cols.n_rows) == (1, 2, 2)


def test_json_parser_lets_non_finite_literals_through_to_validation():
    assert math.isnan(decode_json('{"x": NaN}')["x"])
    assert decode_json('{"x": Infinity, "y": -Infinity}') == {"x": math.inf, "y": -math.inf}
    assert decode_json('{"x": 1' + "0" * 400 + "}")["x"] == 10**400


def test_malformed_json_names_the_parse_error_position():
    with pytest.raises(MalformedJSONError) as exc:
        decode_json('{"a": 1,}')
    assert exc.value.errors[0].field == "body"
    assert "line 1 column" in exc.value.errors[0].reason


def test_sample_events_match_the_breast_cancer_schema(trained):
    schema = trained["breast_cancer"].schema

    single = parse_predict_request(load_event("predict_single")["body"], schema, 1000)
    batch = parse_predict_request(load_event("predict_batch")["body"], schema, 1000)
    cols = parse_predict_request(load_event("predict_columns")["body"], schema, 1000)

    assert (single.n_rows, batch.n_rows, cols.n_rows) == (1, 3, 3)
    assert batch.matrix.tolist() == cols.matrix.tolist()
    assert batch.matrix[0].tolist() == single.matrix[0].tolist()
    assert single.matrix[0, 0] == 17.99  # mean_radius of the first row of data/breast_cancer.csv
    with pytest.raises(ValidationError) as exc:
        parse_predict_request(load_event("predict_invalid")["body"], schema, 1000)
    assert exc.value.errors == [FieldError("mean_radius", "must be a number, got a string")]
    assert len(event_body(load_event("predict_single"))["features"]) == len(schema.features) == 30


# -- the schema's own rules ------------------------------------------------------------------

BAD_SPECS = [
    pytest.param({"name": "c", "kind": "categorical"}, id="categorical-without-categories"),
    pytest.param({"name": "c", "kind": "categorical", "categories": ()}, id="categorical-empty"),
    pytest.param({"name": "x", "kind": "numeric", "categories": ("a",)}, id="numeric-with-categories"),
    pytest.param({"name": "", "kind": "numeric"}, id="empty-name"),
    pytest.param({"name": "x", "kind": "text"}, id="unknown-kind"),
    pytest.param({"name": "x", "kind": "numeric", "unit": "cm"}, id="extra-field"),
]


@pytest.mark.parametrize("fields", BAD_SPECS)
def test_feature_spec_rejects(fields: dict[str, Any]):
    with pytest.raises(ValueError):
        FeatureSpec(**fields)


def test_feature_schema_needs_unique_names_and_at_least_one_feature():
    x = FeatureSpec(name="x", kind="numeric")
    with pytest.raises(ValueError, match="unique"):
        FeatureSchema(features=(x, x))
    with pytest.raises(ValueError):
        FeatureSchema(features=())


def test_schema_compatibility_ignores_ranges_but_not_order_or_kind():
    widened = FeatureSchema(
        features=(
            FeatureSpec(name="age", kind="numeric", minimum=0.0, maximum=120.0),
            SCHEMA.features[1],
            FeatureSpec(name="plan", kind="categorical", categories=("basic", "pro", "team")),
        )
    )
    reordered = FeatureSchema(features=(SCHEMA.features[1], SCHEMA.features[0], SCHEMA.features[2]))

    assert SCHEMA.is_compatible_with(widened)
    assert not SCHEMA.is_compatible_with(reordered)
    assert not SCHEMA.is_compatible_with(NUMERIC)
