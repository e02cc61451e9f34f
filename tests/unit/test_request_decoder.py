"""The request decoder's fast paths answer exactly what the explaining slow path answers, for any body."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.domain.requests import RequestDecoder, parse_predict_request
from functions.domain.schema import FeatureSchema, FeatureSpec
from functions.errors import MlopsError, ValidationError

SCHEMA = FeatureSchema(
    features=(
        FeatureSpec(name="a", kind="numeric", minimum=0.0, maximum=10.0),
        FeatureSpec(name="b", kind="numeric", minimum=-1.0, maximum=1.0),
        FeatureSpec(name="c/d", kind="numeric"),
    )
)
MAX_ROWS = 8
DECODER = RequestDecoder(SCHEMA, MAX_ROWS)

numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(min_value=-(2**70), max_value=2**70),
)
values = st.one_of(
    numbers,
    numbers,
    numbers,
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.lists(numbers, max_size=2),
    st.just(1e400),  # serialised as a number JSON cannot hold
)
names = st.one_of(st.sampled_from(["a", "b", "c/d"]), st.text(max_size=3))


@st.composite
def columns_bodies(draw: Any) -> str:
    n = draw(st.integers(min_value=0, max_value=MAX_ROWS + 2))
    cols = {name: draw(st.lists(numbers, min_size=n, max_size=n)) for name in SCHEMA.names}
    for _ in range(draw(st.integers(min_value=0, max_value=2))):  # damage: a value, a length, a name
        if not cols:
            break
        choice = draw(st.integers(min_value=0, max_value=3))
        name = draw(st.sampled_from(sorted(cols)))
        if choice == 0 and cols[name]:
            cols[name][draw(st.integers(min_value=0, max_value=len(cols[name]) - 1))] = draw(values)
        elif choice == 1:
            cols[name] = cols[name] + [draw(numbers)]
        elif choice == 2:
            cols.pop(name)
        else:
            cols[draw(names)] = draw(st.lists(values, max_size=3))
    body: dict[str, Any] = {"columns": cols}
    if draw(st.integers(min_value=0, max_value=9)) == 0:
        body[draw(st.sampled_from(["rows", "features", "extra"]))] = {}
    return json.dumps(body).replace("Infinity", "1e400")


def outcome(fn: Any, body: str) -> tuple[str, Any]:
    try:
        batch = fn(body)
    except MlopsError as exc:
        return ("error", type(exc).__name__)
    out = [(o.row, o.field, o.value) for o in batch.out_of_range]
    return ("ok", (np.asarray(batch.matrix, dtype=np.float64).tolist(), batch.n_rows, out))


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns_bodies())
def test_the_columns_fast_path_agrees_with_the_slow_path(body: str):
    assert outcome(DECODER.decode, body) == outcome(lambda b: parse_predict_request(b, SCHEMA, MAX_ROWS), body)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({"a": numbers, "b": numbers, "c/d": values}), min_size=1, max_size=MAX_ROWS))
def test_the_rows_fast_path_agrees_with_the_slow_path(rows: list[dict[str, Any]]):
    body = json.dumps({"rows": rows}).replace("Infinity", "1e400")
    assert outcome(DECODER.decode, body) == outcome(lambda b: parse_predict_request(b, SCHEMA, MAX_ROWS), body)


@pytest.mark.parametrize(
    "body",
    [
        '{"columns": {"a": [1], "b": [0], "c/d": [2], "a": ["x"]}}',  # a repeated key
        '{"columns": {"a": [true], "b": [0], "c/d": [2]}}',
        '{"columns": {"a": [NaN], "b": [0], "c/d": [2]}}',
        '{"columns": {"a": [1e999], "b": [0], "c/d": [2]}}',
        '{"columns": {"a": [], "b": [], "c/d": []}}',
        '{"columns": {"a": [[1.5], 2], "b": [0, 0], "c/d": [2, 2]}}',  # simdjson would flatten the nesting
        '{"columns": {"a": [[], 2], "b": [0, 0], "c/d": [2, 2]}}',
    ],
)
def test_bodies_the_fast_path_must_refuse_get_the_slow_paths_answer(body: str):
    assert outcome(DECODER.decode, body) == outcome(lambda b: parse_predict_request(b, SCHEMA, MAX_ROWS), body)
    assert outcome(DECODER.decode, body)[0] == "error"


def test_the_columns_fast_path_is_taken_for_a_valid_batch():
    body = json.dumps({"columns": {"a": [1, 2.5, 11], "b": [0.0, -2, 1], "c/d": [3, 4, 5]}})

    batch = DECODER._numeric_columns(body)

    assert batch is not None
    assert batch.matrix.tolist() == [[1.0, 0.0, 3.0], [2.5, -2.0, 4.0], [11.0, 1.0, 5.0]]
    assert [(o.row, o.field) for o in batch.out_of_range] == [(1, "b"), (2, "a")]
    assert all(math.isfinite(v) for v in batch.matrix.ravel())


NULLABLE = FeatureSchema(
    features=(
        FeatureSpec(name="a", kind="numeric", minimum=0.0, maximum=1.0, nullable=True),
        FeatureSpec(name="b", kind="numeric", minimum=0.0, maximum=1.0),
        FeatureSpec(name="c", kind="categorical", categories=("missing", "x"), nullable=True),
    )
)
nullable_values = st.one_of(st.none(), st.floats(-10, 10), st.integers(-5, 5), st.text(max_size=2), st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.fixed_dictionaries({"a": nullable_values, "b": nullable_values, "c": nullable_values}), max_size=4))
def test_the_fast_and_slow_paths_agree_on_null_for_nullable_features(rows: list[dict[str, Any]]) -> None:
    body = json.dumps({"rows": rows})
    fast = slow = None
    try:
        fast = RequestDecoder(NULLABLE, MAX_ROWS).decode(body)
    except Exception as exc:  # noqa: BLE001 - compared below
        fast = type(exc)
    try:
        slow = parse_predict_request(body, NULLABLE, MAX_ROWS)
    except Exception as exc:  # noqa: BLE001
        slow = type(exc)
    if isinstance(fast, type) or isinstance(slow, type):
        assert fast == slow
        return
    for name in ("a", "b"):
        np.testing.assert_array_equal(fast.columns[name], slow.columns[name])
    assert fast.columns["c"].tolist() == slow.columns["c"].tolist()


def test_null_is_nan_for_a_nullable_number_the_missing_category_for_a_category_and_422_elsewhere() -> None:
    decoder = RequestDecoder(NULLABLE, MAX_ROWS)
    batch = decoder.decode('{"features": {"a": null, "b": 0.5, "c": null}}')
    assert math.isnan(batch.columns["a"][0]) and batch.columns["c"].tolist() == ["missing"]
    with pytest.raises(ValidationError) as refused:
        decoder.decode('{"features": {"a": 0.1, "b": null, "c": "x"}}')
    assert [e.as_dict() for e in refused.value.errors] == [{"field": "b", "reason": "must be a number, got null"}]
