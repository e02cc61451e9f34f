"""Validation gates a retrained candidate must pass before it may replace the champion."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from functions.domain.schema import FeatureSchema


@dataclass(frozen=True)
class GatePolicy:
    """How much worse, slower and bigger a candidate may be.

    Attributes:
        metric_tolerance: allowed loss of the primary metric, relative to the champion's value
            (0.01 = the candidate may be up to 1% worse).
        latency_budget_ms: the most a 1-row prediction may take, in milliseconds.
        artifact_budget_bytes: the largest serialised model allowed.
    """

    metric_tolerance: float = 0.01
    latency_budget_ms: float = 50.0
    artifact_budget_bytes: int = 50 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.metric_tolerance < 0:
            raise ValueError("metric_tolerance must be >= 0")
        if self.latency_budget_ms <= 0 or self.artifact_budget_bytes <= 0:
            raise ValueError("budgets must be > 0")


@dataclass
class GateDecision:
    """The verdict on a candidate: passed only if every gate passed.

    Attributes:
        passed: True when the candidate may be registered.
        reasons: one sentence per failed gate, for a human.
        checks: per gate, its measured value, its limit and whether it passed.
    """

    passed: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)


def metric_limit(champion_metric: float, tolerance: float, lower_is_better: bool) -> float:
    """The worst candidate value still within ``tolerance`` of the champion (relative to its magnitude)."""
    slack = tolerance * abs(champion_metric)
    return champion_metric + slack if lower_is_better else champion_metric - slack


def _metric_gate(
    candidate: float, champion: float | None, name: str, lower_is_better: bool, tolerance: float
) -> tuple[dict[str, Any], str | None]:
    direction = "lower" if lower_is_better else "higher"
    check: dict[str, Any] = {"candidate": candidate, "champion": champion, "tolerance": tolerance, "better": direction}
    if not math.isfinite(candidate):
        return {**check, "passed": False}, f"the candidate's {name} could not be measured on the held-out data"
    if champion is None or not math.isfinite(champion):
        # Nothing to compare against (the champion could not be loaded or scored here): the other gates decide.
        return {**check, "passed": True, "note": "the champion has no comparable metric"}, None
    limit = metric_limit(champion, tolerance, lower_is_better)
    passed = candidate <= limit if lower_is_better else candidate >= limit
    check.update(limit=limit, passed=passed)
    if passed:
        return check, None
    gap = abs(candidate - champion)
    worse_by = f"{gap / abs(champion):.1%}" if champion else f"{gap:.4g}"
    return check, (
        f"{name} {candidate:.4g} is worse than the champion's {champion:.4g} ({direction} is better) by "
        f"{worse_by}, more than the {tolerance:.1%} tolerance"
    )


def evaluate_gates(
    *,
    candidate_metric: float,
    champion_metric: float | None,
    metric_name: str,
    lower_is_better: bool,
    latency_ms_1row: float,
    artifact_bytes: int,
    schema_compatible: bool,
    outputs_finite: bool,
    policy: GatePolicy,
    schema_detail: str = "",
) -> GateDecision:
    """Decide whether a candidate may be registered, gate by gate (arguments by keyword only: they are many).

    Args:
        candidate_metric: the candidate's primary metric on the held-out data.
        champion_metric: the champion's primary metric on the same data (None when it could not be scored).
        metric_name: name of the primary metric, for the reasons.
        lower_is_better: True for error metrics (rmse, mae, log loss).
        latency_ms_1row: the candidate's median 1-row predict latency.
        artifact_bytes: size of the candidate's serialised model.
        schema_compatible: the candidate's feature schema is the champion's (or a declared compatible change).
        outputs_finite: every prediction/probability on the held-out data was finite.
        policy: tolerance and budgets.
        schema_detail: what differs between the schemas, for the reason when they are incompatible.

    Returns:
        The decision with a human-readable reason for every failed gate.
    """
    checks: dict[str, dict[str, Any]] = {}
    reasons: list[str] = []

    checks["metric"], reason = _metric_gate(
        candidate_metric, champion_metric, metric_name, lower_is_better, policy.metric_tolerance
    )
    if reason:
        reasons.append(reason)

    latency_ok = math.isfinite(latency_ms_1row) and latency_ms_1row <= policy.latency_budget_ms
    checks["latency"] = {"value_ms": latency_ms_1row, "budget_ms": policy.latency_budget_ms, "passed": latency_ok}
    if not latency_ok:
        reasons.append(
            f"1-row predict latency {latency_ms_1row:.3g} ms is over the {policy.latency_budget_ms:g} ms budget"
        )

    size_ok = artifact_bytes <= policy.artifact_budget_bytes
    checks["artifact_size"] = {"bytes": artifact_bytes, "budget_bytes": policy.artifact_budget_bytes, "passed": size_ok}
    if not size_ok:
        reasons.append(
            f"model artifact is {artifact_bytes:,} bytes, over the {policy.artifact_budget_bytes:,} byte budget"
        )

    checks["schema"] = {"passed": schema_compatible, "detail": schema_detail}
    if not schema_compatible:
        reasons.append(
            "feature schema differs from the champion's"
            + (f" ({schema_detail})" if schema_detail else "")
            + "; clients would send the wrong columns"
        )

    checks["finite_outputs"] = {"passed": outputs_finite}
    if not outputs_finite:
        reasons.append("the candidate produced NaN or infinite outputs on the held-out data")

    return GateDecision(passed=not reasons, reasons=reasons, checks=checks)


def compare_schemas(
    candidate: FeatureSchema, champion: FeatureSchema, declared_changes: Iterable[str] = ()
) -> tuple[bool, str]:
    """Whether the candidate accepts what the champion's clients send.

    Names, order and kinds must match (ranges and category lists may differ). A feature named in
    ``declared_changes`` may be added, removed or change kind: an operator declared that change
    compatible with the clients.

    Returns:
        ``(compatible, detail)``, ``detail`` saying what differs (empty when nothing does).
    """
    if candidate.is_compatible_with(champion):
        return True, ""
    declared = set(declared_changes)
    theirs = {f.name: f.kind for f in champion.features}
    ours = {f.name: f.kind for f in candidate.features}
    added = sorted(set(ours) - set(theirs))
    removed = sorted(set(theirs) - set(ours))
    retyped = sorted(n for n in set(ours) & set(theirs) if ours[n] != theirs[n])
    parts = []
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    if retyped:
        parts.append("changed kind of " + ", ".join(f"{n} ({theirs[n]} -> {ours[n]})" for n in retyped))
    reordered = [n for n in candidate.names if n in theirs] != [n for n in champion.names if n in ours]
    if reordered:
        parts.append("reordered the features")
    undeclared = (set(added) | set(removed) | set(retyped)) - declared
    return not undeclared and not reordered, "; ".join(parts)
