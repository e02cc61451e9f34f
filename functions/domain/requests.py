"""Decoding prediction requests: JSON bytes straight to validated, typed columns."""

from __future__ import annotations

from typing import Any

import pydantic_core

from functions.domain.schema import Batch, FeatureSchema, _describe, validate_columns, validate_rows
from functions.errors import FieldError, MalformedJSONError, ValidationError

REQUEST_FORMS = ("features", "rows", "columns")


def decode_json(body: str | bytes | None) -> Any:
    """Parse a JSON body. Raises ``MalformedJSONError`` with the parser's reason and position."""
    if body in (None, "", b""):
        raise MalformedJSONError("request body is empty", [FieldError("body", "a JSON object is required")])
    try:
        return pydantic_core.from_json(body, allow_inf_nan=True)
    except ValueError as exc:
        raise MalformedJSONError("request body is not valid JSON", [FieldError("body", str(exc))]) from exc


def decode_object(body: str | bytes | None) -> dict[str, Any]:
    doc = decode_json(body)
    if type(doc) is not dict:
        raise ValidationError("invalid request", [FieldError("body", f"must be a JSON object, got {_describe(doc)}")])
    return doc


def parse_predict_request(body: str | bytes | None, schema: FeatureSchema, max_rows: int) -> Batch:
    """Validate a predict request body in one of three forms.

    ``{"features": {...}}`` is one row, ``{"rows": [{...}, ...]}`` a batch of row objects, and
    ``{"columns": {"name": [...], ...}}`` a batch in columnar form (the cheapest to parse).

    Raises:
        MalformedJSONError: the body is not JSON.
        ValidationError: naming each bad field (and row) and why.
    """
    doc = decode_object(body)
    forms = [k for k in REQUEST_FORMS if k in doc]
    unknown = [k for k in doc if k not in REQUEST_FORMS]
    if unknown:
        raise ValidationError(
            "invalid request",
            [FieldError(k, "unknown field; send one of: features, rows, columns") for k in unknown],
        )
    if len(forms) != 1:
        reason = "missing" if not forms else f"only one of features, rows, columns allowed, got {', '.join(forms)}"
        raise ValidationError("invalid request", [FieldError("body", f"{reason}: send one of features, rows, columns")])
    form = forms[0]
    value = doc[form]
    if form == "features":
        if type(value) is not dict:
            raise ValidationError(
                "invalid request", [FieldError("features", f"must be an object, got {_describe(value)}")]
            )
        return validate_rows(schema, [value], max_rows, field_name="features", single=True)
    if form == "rows":
        if type(value) is not list:
            raise ValidationError("invalid request", [FieldError("rows", f"must be an array, got {_describe(value)}")])
        return validate_rows(schema, value, max_rows)
    return validate_columns(schema, value, max_rows)
