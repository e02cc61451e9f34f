"""Validating ground-truth outcomes against the model's task."""

from __future__ import annotations

import math
import re
from typing import Any

from functions.domain.card import ModelCard
from functions.domain.schema import _describe
from functions.errors import FieldError, ValidationError

REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
MAX_REPORTED = 20


def _check_actual(card: ModelCard, actual: Any) -> str | None:
    """Why ``actual`` does not fit the model's task, or None if it does."""
    if card.task == "regression":
        if type(actual) not in (int, float):
            return f"must be a number for a regression model, got {_describe(actual)}"
        if not math.isfinite(float(actual)):
            return "must be a finite number"
        return None
    classes = card.classes or []
    if any(type(actual) is type(c) and actual == c for c in classes):
        return None
    shown = ", ".join(repr(c) for c in classes)
    return f"must be one of the model's classes ({shown}), got {actual!r}"


def parse_outcomes(doc: dict[str, Any], card: ModelCard, max_outcomes: int) -> list[tuple[str, Any]]:
    """Validate ``{"outcomes": [{"request_id", "actual"}, ...]}`` or one ``{"request_id", "actual"}``.

    Returns:
        ``(request_id, actual)`` pairs. Raises ``ValidationError`` naming each bad record and field.
    """
    if "outcomes" in doc:
        extra = [k for k in doc if k != "outcomes"]
        if extra:
            raise ValidationError("invalid request", [FieldError(k, "unknown field") for k in extra])
        records = doc["outcomes"]
        if type(records) is not list:
            raise ValidationError("invalid request", [FieldError("outcomes", f"must be an array, got {_describe(records)}")])
        batch = True
    else:
        records, batch = [doc], False
    if not records:
        raise ValidationError("empty batch", [FieldError("outcomes", "must contain at least one outcome")])
    if len(records) > max_outcomes:
        raise ValidationError(
            "batch too large", [FieldError("outcomes", f"at most {max_outcomes} outcomes per request, got {len(records)}")]
        )
    errors: list[FieldError] = []
    seen: dict[str, Any] = {}
    out: list[tuple[str, Any]] = []

    def add(name: str, reason: str, row: int) -> None:
        if len(errors) < MAX_REPORTED:
            errors.append(FieldError(name, reason, row if batch else None))

    for i, rec in enumerate(records):
        if type(rec) is not dict:
            add("outcomes", f"each outcome must be an object, got {_describe(rec)}", i)
            continue
        for key in rec:
            if key not in ("request_id", "actual"):
                add(str(key), "unknown field", i)
        rid = rec.get("request_id")
        if "request_id" not in rec:
            add("request_id", "missing required field", i)
        elif type(rid) is not str or not REQUEST_ID.match(rid):
            add("request_id", "must be a request id returned by /predict (1-128 of A-Z a-z 0-9 . _ : -)", i)
        if "actual" not in rec:
            add("actual", "missing required field", i)
            continue
        reason = _check_actual(card, rec["actual"])
        if reason:
            add("actual", reason, i)
            continue
        if type(rid) is str and REQUEST_ID.match(rid):
            if rid in seen and seen[rid] != rec["actual"]:
                add("request_id", "appears twice in this request with different actual values", i)
            elif rid not in seen:
                seen[rid] = rec["actual"]
                out.append((rid, rec["actual"]))
    if errors:
        raise ValidationError(f"{len(errors)} invalid field(s)", errors)
    return out
