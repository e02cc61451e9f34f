"""Retrain gates: each gate passes and fails, for higher- and lower-is-better metrics."""

from __future__ import annotations

from typing import Any

import pytest

from functions.domain.gates import GateDecision, GatePolicy, compare_schemas, evaluate_gates, metric_limit
from functions.domain.schema import FeatureSchema, FeatureSpec

POLICY = GatePolicy(metric_tolerance=0.01, latency_budget_ms=5.0, artifact_budget_bytes=1000)


def gates(**changes: Any) -> GateDecision:
    """A candidate that passes every gate, with ``changes`` applied."""
    args: dict[str, Any] = {
        "candidate_metric": 0.95,
        "champion_metric": 0.95,
        "metric_name": "roc_auc",
        "lower_is_better": False,
        "latency_ms_1row": 1.0,
        "artifact_bytes": 500,
        "schema_compatible": True,
        "outputs_finite": True,
        "policy": POLICY,
    }
    args.update(changes)
    return evaluate_gates(**args)


def schema(*features: tuple[str, str]) -> FeatureSchema:
    return FeatureSchema(
        features=tuple(
            FeatureSpec(name=n, kind=k, categories=("a", "b") if k == "categorical" else None) for n, k in features
        )
    )


def test_a_candidate_as_good_as_the_champion_passes_every_gate() -> None:
    decision = gates()
    assert decision.passed
    assert decision.reasons == []
    assert {c: v["passed"] for c, v in decision.checks.items()} == {
        "metric": True,
        "latency": True,
        "artifact_size": True,
        "schema": True,
        "finite_outputs": True,
    }


@pytest.mark.parametrize(
    ("candidate", "champion", "passed"),
    [
        (0.97, 0.95, True),  # better
        (0.9405, 0.95, True),  # 1% worse: exactly the tolerance
        (0.9404, 0.95, False),  # just over
        (0.80, 0.95, False),
    ],
)
def test_higher_is_better_metric_may_drop_by_the_relative_tolerance_only(
    candidate: float, champion: float, passed: bool
) -> None:
    decision = gates(candidate_metric=candidate, champion_metric=champion)
    assert decision.passed is passed
    assert decision.checks["metric"]["limit"] == pytest.approx(0.9405)
    if not passed:
        (reason,) = decision.reasons
        assert reason.startswith(f"roc_auc {candidate:.4g} is worse than the champion's 0.95 (higher is better)")
        assert "1.0% tolerance" in reason


@pytest.mark.parametrize(
    ("candidate", "passed"),
    [
        (40.0, True),  # lower rmse is better
        (50.5, True),  # 1% higher: exactly the tolerance
        (50.6, False),
        (60.0, False),
    ],
)
def test_lower_is_better_metric_may_rise_by_the_relative_tolerance_only(candidate: float, passed: bool) -> None:
    decision = gates(candidate_metric=candidate, champion_metric=50.0, metric_name="rmse", lower_is_better=True)
    assert decision.passed is passed
    assert decision.checks["metric"]["limit"] == pytest.approx(50.5)
    if not passed:
        assert decision.reasons == [
            f"rmse {candidate:.4g} is worse than the champion's 50 (lower is better) by "
            f"{(candidate - 50) / 50:.1%}, more than the 1.0% tolerance"
        ]


def test_a_lower_is_better_candidate_is_not_judged_as_higher_is_better() -> None:
    # A much lower rmse would fail if the direction were ignored; a much higher one would pass.
    assert gates(candidate_metric=10.0, champion_metric=50.0, lower_is_better=True).passed
    assert not gates(candidate_metric=90.0, champion_metric=50.0, lower_is_better=True).passed


def test_the_tolerance_is_relative_to_the_magnitude_of_the_champion_metric() -> None:
    assert metric_limit(-2.0, 0.1, lower_is_better=False) == pytest.approx(-2.2)
    assert metric_limit(0.0, 0.1, lower_is_better=True) == 0.0
    decision = gates(candidate_metric=0.5, champion_metric=0.0, metric_name="mae", lower_is_better=True)
    assert decision.reasons == [
        "mae 0.5 is worse than the champion's 0 (lower is better) by 0.5, more than the 1.0% tolerance"
    ]


def test_a_candidate_metric_that_could_not_be_measured_fails() -> None:
    decision = gates(candidate_metric=float("nan"))
    assert not decision.passed
    assert decision.reasons == ["the candidate's roc_auc could not be measured on the held-out data"]


def test_without_a_comparable_champion_metric_the_other_gates_decide() -> None:
    for champion in (None, float("nan")):
        decision = gates(champion_metric=champion)
        assert decision.passed
        assert decision.checks["metric"]["note"] == "the champion has no comparable metric"


@pytest.mark.parametrize(("latency", "passed"), [(4.9, True), (5.0, True), (5.1, False), (float("inf"), False)])
def test_one_row_latency_must_be_within_budget(latency: float, passed: bool) -> None:
    decision = gates(latency_ms_1row=latency)
    assert decision.passed is passed
    assert decision.checks["latency"] == {"value_ms": latency, "budget_ms": 5.0, "passed": passed}
    if not passed and latency == 5.1:
        assert decision.reasons == ["1-row predict latency 5.1 ms is over the 5 ms budget"]


@pytest.mark.parametrize(("size", "passed"), [(1000, True), (1001, False)])
def test_artifact_must_be_within_budget(size: int, passed: bool) -> None:
    decision = gates(artifact_bytes=size)
    assert decision.passed is passed
    if not passed:
        assert decision.reasons == ["model artifact is 1,001 bytes, over the 1,000 byte budget"]


def test_an_incompatible_schema_fails_and_says_what_differs() -> None:
    assert gates(schema_compatible=True, schema_detail="").passed
    decision = gates(schema_compatible=False, schema_detail="removed age")
    assert not decision.passed
    assert decision.reasons == [
        "feature schema differs from the champion's (removed age); clients would send the wrong columns"
    ]


def test_non_finite_outputs_fail() -> None:
    decision = gates(outputs_finite=False)
    assert not decision.passed
    assert decision.reasons == ["the candidate produced NaN or infinite outputs on the held-out data"]


def test_every_failed_gate_gives_its_own_reason() -> None:
    decision = gates(
        candidate_metric=0.5, latency_ms_1row=9.0, artifact_bytes=5000, schema_compatible=False, outputs_finite=False
    )
    assert not decision.passed
    assert len(decision.reasons) == 5
    assert not any(c["passed"] for c in decision.checks.values())


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="metric_tolerance"):
        GatePolicy(metric_tolerance=-0.1)
    with pytest.raises(ValueError, match="budgets"):
        GatePolicy(latency_budget_ms=0)


def test_schemas_with_the_same_names_order_and_kinds_are_compatible() -> None:
    a = schema(("x", "numeric"), ("c", "categorical"))
    assert compare_schemas(a, a) == (True, "")


@pytest.mark.parametrize(
    ("candidate", "detail"),
    [
        (schema(("x", "numeric")), "removed c"),
        (schema(("x", "numeric"), ("c", "categorical"), ("y", "numeric")), "added y"),
        (schema(("x", "numeric"), ("c", "numeric")), "changed kind of c (categorical -> numeric)"),
        (schema(("c", "categorical"), ("x", "numeric")), "reordered the features"),
    ],
)
def test_schema_changes_are_incompatible_and_described(candidate: FeatureSchema, detail: str) -> None:
    champion = schema(("x", "numeric"), ("c", "categorical"))
    assert compare_schemas(candidate, champion) == (False, detail)


def test_a_declared_schema_change_is_compatible() -> None:
    champion = schema(("x", "numeric"), ("c", "categorical"))
    assert compare_schemas(schema(("x", "numeric")), champion, declared_changes=["c"]) == (True, "removed c")
    assert compare_schemas(schema(("x", "numeric")), champion, declared_changes=["x"])[0] is False
