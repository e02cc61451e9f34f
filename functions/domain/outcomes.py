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
        try:
            finite = math.isfinite(float(actual))
        except OverflowError:
            finite = False
        if not finite:
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
            raise ValidationError(
                "invalid request", [FieldError("outcomes", f"must be an array, got {_describe(records)}")]
            )
        batch = True
    else:
        records, batch = [doc], False
    if not records:
        raise ValidationError("empty batch", [FieldError("outcomes", "must contain at least one outcome")])
    if len(records) > max_outcomes:
        raise ValidationError(
            "batch too large",
            [FieldError("outcomes", f"at most {max_outcomes} outcomes per request, got {len(records)}")],
        )
    errors: list[FieldError] = []
    seen: dict[str, Any] = {}
    out: list[tuple[str, Any]] = []
    for i, rec in enumerate(records):
        for name, reason in _record_problems(rec, card, seen):
            if len(errors) < MAX_REPORTED:
                errors.append(FieldError(name, reason, i if batch else None))
        rid = rec.get("request_id") if type(rec) is dict else None
        if type(rid) is str and seen.get(rid) is _NEW:  # a str: an object or array id is unhashable
            seen[rid] = rec["actual"]
            out.append((rid, rec["actual"]))
    if errors:
        raise ValidationError(f"{len(errors)} invalid field(s)", errors)
    return out


_NEW = object()


def _record_problems(rec: Any, card: ModelCard, seen: dict[str, Any]) -> list[tuple[str, str]]:
    """What is wrong with one outcome record; marks a new valid request id in ``seen`` with ``_NEW``."""
    if type(rec) is not dict:
        return [("outcomes", f"each outcome must be an object, got {_describe(rec)}")]
    problems = [(str(key), "unknown field") for key in rec if key not in ("request_id", "actual")]
    rid = rec.get("request_id")
    rid_ok = type(rid) is str and bool(REQUEST_ID.fullmatch(rid))
    if "request_id" not in rec:
        problems.append(("request_id", "missing required field"))
    elif not rid_ok:
        problems.append(("request_id", "must be a request id returned by /predict (1-128 of A-Z a-z 0-9 . _ : -)"))
    if "actual" not in rec:
        problems.append(("actual", "missing required field"))
    else:
        reason = _check_actual(card, rec["actual"])
        if reason:
            problems.append(("actual", reason))
    if problems or not rid_ok:
        return problems
    assert isinstance(rid, str)
    if rid in seen and seen[rid] != rec["actual"]:
        return [("request_id", "appears twice in this request with different actual values")]
    if rid not in seen:
        seen[rid] = _NEW
    return []
