"""Decoding prediction requests: JSON bytes straight to validated, typed columns."""

from __future__ import annotations

import threading
from operator import itemgetter
from typing import Any

import numpy as np
import pydantic_core
import simdjson
from pydantic_core import SchemaValidator, core_schema

from functions.domain.schema import (
    MISSING_CATEGORY,
    Batch,
    FeatureSchema,
    FeatureSpec,
    RangeBounds,
    _describe,
    assemble_batch,
    validate_columns,
    validate_rows,
)
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
    """Validate a predict request body in one of three forms, explaining every problem.

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


def _value_schema(spec: FeatureSpec) -> core_schema.CoreSchema:
    value: core_schema.CoreSchema
    if spec.kind == "numeric":
        value = core_schema.float_schema(strict=True, allow_inf_nan=False)
    else:
        value = core_schema.literal_schema(list(spec.categories or ()))
    return core_schema.nullable_schema(value) if spec.nullable else value


class RequestDecoder:
    """Parses and type-checks a request in one pass with a validator compiled for one model's schema.

    The compiled validator only answers "valid or not"; when it says not, the request goes
    through ``parse_predict_request`` once more, which explains each problem in the project's
    own words. Valid requests never take that slower path.

    The columnar form of an all-numeric schema, the form for large batches, has a faster path
    still: simdjson parses it and hands each column over as a buffer of doubles, so no Python
    float is ever made (``_numeric_columns``). It accepts only what the validator accepts (exactly
    the schema's columns, equal lengths, finite numbers) and leaves everything else to it.
    """

    def __init__(self, schema: FeatureSchema, max_rows: int) -> None:
        self.schema = schema
        self.max_rows = max_rows
        self._names = schema.names
        self._numeric = schema.all_numeric
        self._bounds = RangeBounds.of(schema)
        row = core_schema.typed_dict_schema(
            {f.name: core_schema.typed_dict_field(_value_schema(f)) for f in schema.features},
            extra_behavior="forbid",
        )
        columns = core_schema.typed_dict_schema(
            {
                f.name: core_schema.typed_dict_field(core_schema.list_schema(_value_schema(f), max_length=max_rows))
                for f in schema.features
            },
            extra_behavior="forbid",
        )
        request = core_schema.typed_dict_schema(
            {
                "features": core_schema.typed_dict_field(row, required=False),
                "rows": core_schema.typed_dict_field(
                    core_schema.list_schema(row, min_length=1, max_length=max_rows), required=False
                ),
                "columns": core_schema.typed_dict_field(columns, required=False),
            },
            extra_behavior="forbid",
        )
        self._validator = SchemaValidator(request)
        self._local = threading.local()  # a simdjson parser per thread: its documents live until its next parse
        self._row_values = itemgetter(*self._names) if len(self._names) > 1 else (lambda r: (r[self._names[0]],))

    def decode(self, body: str | bytes | None) -> Batch:
        """The validated batch, or ``MalformedJSONError``/``ValidationError`` explaining what is wrong."""
        batch = None
        if body and self._numeric:
            batch = self._numeric_columns(body)
        if batch is None and body:
            batch = self._fast(body)
        if batch is None:
            # Normally raises with the details. Should it accept what the compiled validator
            # refused, its answer stands: it holds every rule this project documents.
            return parse_predict_request(body, self.schema, self.max_rows)
        return batch

    def _parser(self) -> Any:
        parser = getattr(self._local, "parser", None)
        if parser is None:
            parser = self._local.parser = simdjson.Parser()
        return parser

    def _numeric_columns(self, body: str | bytes) -> Batch | None:
        """``{"columns": {...}}`` straight into a float64 matrix, or None for anything else (the validator decides)."""
        columns = self._columns_object(body)
        matrix = None if columns is None else self._column_matrix(columns)
        if matrix is None or not np.isfinite(matrix).all():
            return None
        return self._numeric_batch(matrix)

    def _columns_object(self, body: str | bytes) -> Any:
        """The ``columns`` object of a body holding only it, with one entry per feature; else None."""
        # simdjson flattens nested arrays into a column's buffer: a valid body has one '[' per column.
        brackets = body.count("[") if isinstance(body, str) else body.count(b"[")
        if brackets != len(self._names):
            return None
        try:
            doc = self._parser().parse(body)
        except (ValueError, RuntimeError):  # not JSON, or JSON simdjson does not take (big integers)
            return None
        if not isinstance(doc, simdjson.Object) or len(doc) != 1 or "columns" not in doc:
            return None
        columns = doc["columns"]
        if not isinstance(columns, simdjson.Object) or len(columns) != len(self._names):
            return None  # a missing, extra or repeated column
        return columns

    def _column_matrix(self, columns: Any) -> np.ndarray | None:
        """Each feature's array as a float64 column; None unless all are numbers, of one length within bounds."""
        arrays = [columns.get(name) for name in self._names]
        if not all(isinstance(a, simdjson.Array) for a in arrays):
            return None
        n_rows = len(arrays[0])
        if not 0 < n_rows <= self.max_rows or any(len(a) != n_rows for a in arrays):
            return None
        matrix = np.empty((n_rows, len(self._names)), dtype=np.float64)
        for j, values in enumerate(arrays):
            try:
                column = np.frombuffer(values.as_buffer(of_type="d"), dtype=np.float64)
            except (TypeError, ValueError, RuntimeError):  # a value that is not a number (bool, string, null, ...)
                return None
            if column.size != n_rows:
                return None
            matrix[:, j] = column
        return matrix

    def _fast(self, body: str | bytes) -> Batch | None:
        try:
            doc = self._validator.validate_json(body)
        except pydantic_core.ValidationError:
            return None
        if len(doc) != 1:
            return None
        if "features" in doc:
            return self._from_rows([doc["features"]])
        if "rows" in doc:
            return self._from_rows(doc["rows"])
        return self._from_columns(doc["columns"])

    def _from_columns(self, columns: dict[str, list[Any]]) -> Batch | None:
        n_rows = len(columns[self._names[0]])
        if n_rows == 0 or any(len(columns[name]) != n_rows for name in self._names):
            return None
        if self._numeric:
            return self._numeric_batch(np.array([columns[name] for name in self._names], dtype=np.float64).T)
        return assemble_batch(self.schema, self._typed_columns(columns), n_rows, bounds=self._bounds)

    def _from_rows(self, rows: list[dict[str, Any]]) -> Batch:
        if self._numeric:
            return self._numeric_batch(np.array(list(map(self._row_values, rows)), dtype=np.float64))
        columns = {name: [row[name] for row in rows] for name in self._names}
        return assemble_batch(self.schema, self._typed_columns(columns), len(rows), bounds=self._bounds)

    def _numeric_batch(self, matrix: np.ndarray) -> Batch:
        columns = {name: matrix[:, j] for j, name in enumerate(self._names)}
        return assemble_batch(self.schema, columns, matrix.shape[0], matrix=matrix, bounds=self._bounds)

    def _typed_columns(self, columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        """Typed columns; a null (only a nullable feature's passes the validator) is NaN or the missing category."""
        out: dict[str, np.ndarray] = {}
        for f in self.schema.features:
            values = columns[f.name]
            if f.kind == "numeric":
                out[f.name] = np.array(values, dtype=np.float64)  # None becomes NaN
            elif f.nullable:
                out[f.name] = np.array([MISSING_CATEGORY if v is None else v for v in values], dtype=object)
            else:
                out[f.name] = np.array(values, dtype=object)
        return out
