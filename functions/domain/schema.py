"""Feature schema of a model and the validation of prediction requests against it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from functions.errors import FieldError, ValidationError

MAX_REPORTED_ERRORS = 20
MISSING_CATEGORY = "missing"  # the category a blank categorical cell becomes (functions/domain/dataset.py)


class FeatureSpec(BaseModel):
    """One input feature: its name, kind, and the range or categories seen in training."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: Literal["numeric", "categorical"]
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] | None = None
    nullable: bool = Field(default=False, description="training had missing values: null is accepted (imputed)")

    @model_validator(mode="after")
    def _check_kind(self) -> FeatureSpec:
        if self.kind == "categorical" and not self.categories:
            raise ValueError(f"categorical feature {self.name!r} needs its categories")
        if self.kind == "numeric" and self.categories:
            raise ValueError(f"numeric feature {self.name!r} cannot declare categories")
        return self


class FeatureSchema(BaseModel):
    """The ordered input contract of a model. Column order is the order the pipeline expects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: tuple[FeatureSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureSchema:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        return self

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def all_numeric(self) -> bool:
        return all(f.kind == "numeric" for f in self.features)

    def is_compatible_with(self, other: FeatureSchema) -> bool:
        """Same names, order and kinds (ranges and category lists may differ)."""
        return [(f.name, f.kind) for f in self.features] == [(f.name, f.kind) for f in other.features]


@dataclass
class OutOfRange:
    """A served value outside the range seen in training."""

    row: int
    field: str
    value: float


@dataclass
class Batch:
    """Validated input rows: the model matrix plus the columns kept for capture."""

    matrix: np.ndarray
    columns: dict[str, np.ndarray]
    n_rows: int
    out_of_range: list[OutOfRange] = field(default_factory=list)


class _Collector:
    """Collects field errors up to a bound, so a bad 1,000-row batch gets a readable answer."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.count = 0

    def add(self, name: str, reason: str, row: int | None) -> None:
        self.count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(FieldError(field=name, reason=reason, row=row))

    def raise_if_any(self) -> None:
        if self.errors:
            shown = f" (first {len(self.errors)} shown)" if self.count > len(self.errors) else ""
            raise ValidationError(f"{self.count} invalid field(s){shown}", self.errors)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _to_float(value: float | int) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf


def _numeric_column(spec: FeatureSpec, values: list[Any], rows: bool, errors: _Collector) -> np.ndarray | None:
    """Turn JSON values into a float64 column, or record why not (null is NaN for a nullable feature)."""
    kinds = set(map(type, values))
    if spec.nullable and type(None) in kinds:
        out = np.full(len(values), np.nan)
        valid = True
        for i, value in enumerate(values):
            if value is None:
                continue
            number = _to_float(value) if type(value) in (int, float) else None
            if number is not None and math.isfinite(number):
                out[i] = number
                continue
            valid = False
            reason = f"must be a finite number, got {value!r}" if number is not None else "must be a number or null"
            errors.add(
                spec.name, f"{reason}, got {_describe(value)}" if number is None else reason, i if rows else None
            )
        return out if valid else None
    if kinds <= {float, int}:
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:
            arr = np.array([_to_float(v) for v in values], dtype=np.float64)
        if not np.isfinite(arr).all():
            for i in np.flatnonzero(~np.isfinite(arr)).tolist():
                errors.add(spec.name, f"must be a finite number, got {values[i]!r}", i if rows else None)
            return None
        return arr
    for i, value in enumerate(values):
        if type(value) in (int, float):
            if not math.isfinite(_to_float(value)):
                errors.add(spec.name, f"must be a finite number, got {value!r}", i if rows else None)
        else:
            errors.add(spec.name, f"must be a number, got {_describe(value)}", i if rows else None)
    return None


def _categorical_column(spec: FeatureSpec, values: list[Any], rows: bool, errors: _Collector) -> np.ndarray | None:
    if spec.nullable:  # a blank in training made "missing" a category: null is that category
        values = [MISSING_CATEGORY if v is None else v for v in values]
    allowed = spec.categories or ()
    distinct = set(values) if all(type(v) is str for v in values) else None
    if distinct is not None and distinct.issubset(allowed):
        return np.array(values, dtype=object)
    for i, value in enumerate(values):
        if type(value) is not str:
            errors.add(spec.name, f"must be a string category, got {_describe(value)}", i if rows else None)
        elif value not in allowed:
            shown = ", ".join(allowed[:10]) + (", ..." if len(allowed) > 10 else "")
            errors.add(spec.name, f"unknown category {value!r}; expected one of: {shown}", i if rows else None)
    return None


@dataclass(frozen=True)
class RangeBounds:
    """The training ranges of a schema's bounded numeric features, as arrays for one vectorised check."""

    names: tuple[str, ...]
    index: np.ndarray  # the features' positions in the schema (its column order)
    lo: np.ndarray
    hi: np.ndarray
    every_column: bool  # the bounded features are all the schema's features, in order

    @classmethod
    def of(cls, schema: FeatureSchema) -> RangeBounds:
        bounded = [
            (j, f)
            for j, f in enumerate(schema.features)
            if f.kind == "numeric" and (f.minimum is not None or f.maximum is not None)
        ]
        return cls(
            names=tuple(f.name for _, f in bounded),
            index=np.asarray([j for j, _ in bounded], dtype=np.intp),
            lo=np.asarray([-np.inf if f.minimum is None else f.minimum for _, f in bounded], dtype=np.float64),
            hi=np.asarray([np.inf if f.maximum is None else f.maximum for _, f in bounded], dtype=np.float64),
            every_column=len(bounded) == len(schema.features),
        )

    def flag(self, columns: dict[str, np.ndarray], matrix: np.ndarray | None) -> list[OutOfRange]:
        """Every value outside its feature's training range, by row and then in schema order."""
        if not self.names:
            return []
        if matrix is not None and matrix.dtype == np.float64:
            values = matrix if self.every_column else matrix[:, self.index]
        else:
            values = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in self.names])
        mask = (values < self.lo) | (values > self.hi)
        if not mask.any():
            return []
        rows, cols = np.nonzero(mask)  # row-major: by row, then in schema order
        return [
            OutOfRange(row=int(r), field=self.names[c], value=float(values[r, c]))
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        ]


def assemble_batch(
    schema: FeatureSchema,
    columns: dict[str, np.ndarray],
    n_rows: int,
    matrix: np.ndarray | None = None,
    bounds: RangeBounds | None = None,
) -> Batch:
    """Build the model matrix (unless given) and flag values outside the training ranges.

    ``bounds`` is ``RangeBounds.of(schema)``, computed once by a caller that checks many batches.
    """
    if matrix is None:
        if schema.all_numeric:
            matrix = np.column_stack([columns[f.name] for f in schema.features])
        else:
            matrix = np.empty((n_rows, len(schema.features)), dtype=object)
            for j, f in enumerate(schema.features):
                matrix[:, j] = columns[f.name]
    out = (bounds or RangeBounds.of(schema)).flag(columns, matrix)
    return Batch(matrix=matrix, columns=columns, n_rows=n_rows, out_of_range=out)


def _build_columns(
    schema: FeatureSchema, raw: dict[str, list[Any]], n_rows: int, rows: bool, errors: _Collector
) -> Batch:
    columns: dict[str, np.ndarray] = {}
    for spec in schema.features:
        values = raw[spec.name]
        if spec.kind == "numeric":
            col = _numeric_column(spec, values, rows, errors)
        else:
            col = _categorical_column(spec, values, rows, errors)
        if col is not None:
            columns[spec.name] = col
    errors.raise_if_any()
    return assemble_batch(schema, columns, n_rows)


def validate_rows(
    schema: FeatureSchema, rows: list[Any], max_rows: int, field_name: str = "rows", single: bool = False
) -> Batch:
    """Validate a list of row objects against ``schema``.

    Args:
        schema: the model's feature schema.
        rows: decoded JSON values, each expected to be an object of feature name to value.
        max_rows: the largest batch accepted.
        field_name: the request field the rows came from, used in error messages.
        single: the request holds one row object (errors then name no row index).

    Returns:
        The validated batch. Raises ``ValidationError`` naming every bad field and row.
    """
    _check_size(len(rows), max_rows, field_name)
    names = schema.names
    expected = set(names)
    errors = _Collector()
    for i, row in enumerate(rows):
        at = None if single else i
        if type(row) is not dict:
            errors.add(field_name, f"each row must be an object, got {_describe(row)}", at)
        elif row.keys() != expected:
            for name in names:
                if name not in row:
                    errors.add(name, "missing required feature", at)
            for key in row:
                if key not in expected:
                    errors.add(str(key), "unknown feature", at)
    errors.raise_if_any()
    raw = {name: [row[name] for row in rows] for name in names}
    return _build_columns(schema, raw, len(rows), not single, errors)


def validate_columns(schema: FeatureSchema, columns: Any, max_rows: int) -> Batch:
    """Validate the columnar form ``{"feature": [values...], ...}`` against ``schema``."""
    errors = _Collector()
    if type(columns) is not dict:
        raise ValidationError(
            "invalid request", [FieldError("columns", f"must be an object, got {_describe(columns)}")]
        )
    names = schema.names
    for name in names:
        if name not in columns:
            errors.add(f"columns.{name}", "missing required feature", None)
    known = set(names)
    for key in columns:
        if key not in known:
            errors.add(f"columns.{key}", "unknown feature", None)
    for name in names:
        if name in columns and type(columns[name]) is not list:
            errors.add(f"columns.{name}", f"must be an array, got {_describe(columns[name])}", None)
    errors.raise_if_any()
    lengths = {len(columns[name]) for name in names}
    if len(lengths) != 1:
        raise ValidationError(
            "invalid request",
            [FieldError("columns", f"all columns must have the same length, got lengths {sorted(lengths)}")],
        )
    n_rows = lengths.pop()
    _check_size(n_rows, max_rows, "columns")
    return _build_columns(schema, {name: columns[name] for name in names}, n_rows, True, errors)  # rows = positions


def _check_size(n_rows: int, max_rows: int, field_name: str) -> None:
    if n_rows == 0:
        raise ValidationError("empty batch", [FieldError(field_name, "must contain at least one row")])
    if n_rows > max_rows:
        raise ValidationError(
            "batch too large",
            [FieldError(field_name, f"at most {max_rows} rows per request, got {n_rows}")],
        )
