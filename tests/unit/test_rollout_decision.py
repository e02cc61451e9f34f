"""The canary decision: a pure function of the stored rollout, what was observed, the policy and the time."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from functions.adapters.lambda_alias import DeploymentError, check_weight
from functions.domain.rollout import (
    CanaryChecks,
    RollbackRecord,
    RolloutPolicy,
    RolloutState,
    StageFigures,
    canary_failure,
    decide,
)

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = RolloutPolicy(
    stages=(0.1, 0.5, 1.0), bake_seconds=600, min_requests=20, max_error_rate=0.02, max_prediction_psi=0.25
)
BAKED = T0 + timedelta(seconds=601)
HEALTHY = CanaryChecks(challenger_requests=50, stable_requests=450, prediction_psi=0.03)


def canary(stage_index: int = 0, **changes: Any) -> RolloutState:
    """A canary of v2 against champion v1, in stage ``stage_index`` since T0."""
    fields: dict[str, Any] = {
        "model_name": "breast-cancer",
        "status": "canary",
        "challenger_version": 2,
        "champion_version": 1,
        "stable_function_version": "1",
        "canary_function_version": "2",
        "stage_index": stage_index,
        "weight": POLICY.stages[stage_index],
        "started_at": T0,
        "stage_started_at": T0,
    }
    fields.update(changes)
    return RolloutState(**fields)


# -- starting -------------------------------------------------------------------------------------
def test_a_pending_rollout_starts_at_the_first_stage_weight() -> None:
    pending = RolloutState(model_name="breast-cancer", status="pending", challenger_version=2, champion_version=1)

    decision = decide(pending, None, POLICY, T0)

    assert (decision.action, decision.weight) == ("start", 0.1)
    assert "v2" in decision.reason


def test_the_first_stage_weight_comes_from_the_policy() -> None:
    pending = RolloutState(model_name="breast-cancer", status="pending", challenger_version=7)

    decision = decide(pending, None, RolloutPolicy(stages=(0.05, 0.25, 1.0)), T0)

    assert (decision.action, decision.weight) == ("start", 0.05)


# -- baking, traffic, advancing -----------------------------------------------------------------------
def test_a_canary_within_its_bake_time_holds_at_its_weight() -> None:
    decision = decide(canary(0), HEALTHY, POLICY, T0 + timedelta(seconds=599))

    assert (decision.action, decision.weight) == ("hold", 0.1)
    assert decision.reason == "baking"


def test_a_stage_whose_bake_time_is_over_and_that_saw_enough_traffic_advances_to_the_next_weight() -> None:
    decision = decide(canary(0), HEALTHY, POLICY, BAKED)

    assert (decision.action, decision.weight) == ("advance", 0.5)


def test_the_bake_time_ends_exactly_after_bake_seconds() -> None:
    assert decide(canary(0), HEALTHY, POLICY, T0 + timedelta(seconds=600)).action == "advance"


def test_a_baked_stage_without_enough_challenger_requests_waits_for_traffic() -> None:
    quiet = HEALTHY.model_copy(update={"challenger_requests": 19})

    decision = decide(canary(0), quiet, POLICY, BAKED)

    assert (decision.action, decision.weight) == ("hold", 0.1)
    assert decision.reason == "waiting for traffic: 19/20 challenger requests"


def test_with_no_bake_time_a_stage_passes_as_soon_as_it_has_traffic() -> None:
    policy = POLICY.model_copy(update={"bake_seconds": 0.0})

    assert decide(canary(0), HEALTHY, policy, T0).action == "advance"


def test_a_canary_without_a_recorded_stage_start_keeps_baking() -> None:
    decision = decide(canary(0, stage_started_at=None), HEALTHY, POLICY, BAKED)

    assert decision.action == "hold"


def test_passing_the_stage_before_full_traffic_promotes() -> None:
    decision = decide(canary(1), HEALTHY, POLICY, BAKED)

    assert (decision.action, decision.weight) == ("promote", 1.0)


def test_a_canary_at_the_last_stage_is_promoted() -> None:
    decision = decide(canary(2), HEALTHY, POLICY, BAKED)

    assert (decision.action, decision.weight) == ("promote", 1.0)
    assert decision.reason == "all stages passed"


# -- rolling back ------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", [0, 1, 2])
def test_an_alarm_rolls_back_whatever_the_stage(stage: int) -> None:
    alarmed = HEALTHY.model_copy(update={"alarms_in_alarm": ["canary-v2-p99-latency", "canary-v2-errors"]})

    decision = decide(canary(stage), alarmed, POLICY, T0 + timedelta(seconds=1))

    assert (decision.action, decision.weight) == ("rollback", 0.0)
    assert decision.reason == "alarm: canary-v2-errors, canary-v2-p99-latency"


def test_an_alarm_rolls_back_even_before_the_bake_time_is_over_and_with_little_traffic() -> None:
    alarmed = CanaryChecks(alarms_in_alarm=["canary-v2-errors"], challenger_requests=1)

    assert decide(canary(0), alarmed, POLICY, T0).action == "rollback"


def test_an_error_rate_above_the_limit_with_enough_requests_rolls_back() -> None:
    failing = HEALTHY.model_copy(update={"challenger_requests": 95, "challenger_errors": 5})

    decision = decide(canary(0), failing, POLICY, T0 + timedelta(seconds=1))

    assert failing.challenger_error_rate == pytest.approx(0.05)
    assert decision.action == "rollback"
    assert decision.reason == "challenger error rate 5.0% > 2.0%"


def test_an_error_rate_at_the_limit_is_tolerated() -> None:
    at_limit = HEALTHY.model_copy(update={"challenger_requests": 98, "challenger_errors": 2})

    assert at_limit.challenger_error_rate == pytest.approx(0.02)
    assert canary_failure(at_limit, POLICY) is None


def test_errors_among_too_few_requests_do_not_roll_back_by_rate() -> None:
    few = CanaryChecks(challenger_requests=10, challenger_errors=1)

    assert canary_failure(few, POLICY) is None


def test_a_challenger_that_fails_every_request_is_rolled_back_by_its_error_rate() -> None:
    all_failing = CanaryChecks(challenger_requests=0, challenger_errors=50, stable_requests=450)

    decision = decide(canary(0), all_failing, POLICY, BAKED)

    assert decision.action == "rollback"


def test_a_prediction_psi_above_the_limit_rolls_back() -> None:
    shifted = HEALTHY.model_copy(update={"prediction_psi": 0.4})

    decision = decide(canary(1), shifted, POLICY, T0 + timedelta(seconds=1))

    assert (decision.action, decision.weight) == ("rollback", 0.0)
    assert decision.reason == "prediction distribution differs from the champion's: PSI 0.400 > 0.25"


def test_an_unknown_prediction_psi_is_not_a_failure() -> None:
    assert canary_failure(HEALTHY.model_copy(update={"prediction_psi": None}), POLICY) is None


def test_the_alarm_is_named_first_when_several_checks_fail() -> None:
    everything = CanaryChecks(
        alarms_in_alarm=["canary-v2-errors"], challenger_requests=100, challenger_errors=50, prediction_psi=3.0
    )

    assert canary_failure(everything, POLICY) == "alarm: canary-v2-errors"


def test_a_challenger_without_any_requests_has_no_error_rate() -> None:
    assert CanaryChecks().challenger_error_rate == 0.0


# -- nothing to do ----------------------------------------------------------------------------------
def test_a_paused_canary_does_nothing_even_when_it_should_roll_back() -> None:
    alarmed = HEALTHY.model_copy(update={"alarms_in_alarm": ["canary-v2-errors"]})

    decision = decide(canary(0, paused=True), alarmed, POLICY, BAKED)

    assert decision.action == "none"
    assert decision.reason == "paused by an operator"


def test_a_paused_pending_rollout_does_not_start() -> None:
    pending = RolloutState(model_name="breast-cancer", status="pending", challenger_version=2, paused=True)

    assert decide(pending, None, POLICY, T0).action == "none"


@pytest.mark.parametrize("status", ["idle", "promoted", "rolled_back"])
def test_a_finished_or_idle_rollout_does_nothing(status: str) -> None:
    state = canary(2, status=status)

    decision = decide(state, HEALTHY, POLICY, BAKED)

    assert decision.action == "none"
    assert decision.reason == f"no canary running (status {status})"


def test_a_canary_without_observations_does_nothing() -> None:
    assert decide(canary(0), None, POLICY, BAKED).action == "none"


# -- the policy -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "stages",
    [
        pytest.param((0.5, 0.1, 1.0), id="not-rising"),
        pytest.param((0.1, 0.5), id="not-ending-at-one"),
        pytest.param((0.1, 1.5), id="above-one"),
        pytest.param((0.0, 1.0), id="zero-weight"),
        pytest.param((-0.1, 1.0), id="negative"),
        pytest.param((), id="empty"),
    ],
)
def test_a_policy_refuses_stages_that_do_not_rise_to_full_traffic(stages: tuple[float, ...]) -> None:
    with pytest.raises(ValidationError, match="stages must rise within"):
        RolloutPolicy(stages=stages)


def test_the_default_policy_is_ten_fifty_hundred() -> None:
    policy = RolloutPolicy()

    assert policy.stages == (0.1, 0.5, 1.0)
    assert (policy.bake_seconds, policy.min_requests) == (600.0, 20)


def test_a_policy_refuses_negative_bake_time_and_error_rates_above_one() -> None:
    with pytest.raises(ValidationError):
        RolloutPolicy(bake_seconds=-1)
    with pytest.raises(ValidationError):
        RolloutPolicy(max_error_rate=1.5)


# -- the state and its records ---------------------------------------------------------------------------
def test_a_rollback_record_measures_detection_from_the_canary_start_and_revert_from_detection() -> None:
    record = RollbackRecord(
        challenger_version=2,
        reason="alarm: canary-v2-errors",
        canary_started_at=T0,
        detected_at=T0 + timedelta(minutes=4),
        reverted_at=T0 + timedelta(minutes=4, seconds=1.5),
        weight_at_detection=0.1,
    )

    assert record.time_to_detect_seconds == 240.0
    assert record.time_to_revert_seconds == 1.5


def test_only_pending_and_canary_rollouts_are_active() -> None:
    assert canary(0).active
    assert canary(0, status="pending").active
    assert not canary(0, status="promoted").active
    assert not canary(0, status="rolled_back").active
    assert not RolloutState(model_name="breast-cancer").active


def test_the_history_keeps_the_last_200_events() -> None:
    state = RolloutState(model_name="breast-cancer")
    for i in range(250):
        state.note(T0 + timedelta(seconds=i), f"event {i}")

    assert len(state.history) == 200
    assert state.history[0].what == "event 50"
    assert state.history[-1].what == "event 249"


# -- alias weights ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("weight", [0.0, 0.1, 0.5, 0.999])
def test_alias_weights_in_zero_to_one_are_accepted(weight: float) -> None:
    assert check_weight(weight) == weight


@pytest.mark.parametrize("weight", [1.5, math.nan, -0.1, 1.0, math.inf])
def test_alias_weights_outside_zero_to_one_are_refused(weight: float) -> None:
    with pytest.raises(DeploymentError, match=r"alias weight must be in \[0, 1\)"):
        check_weight(weight)


# -- stage figures ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("p99", "maximum", "shown"),
    [
        (12.34, 20.0, "p99 12.3 ms (limit 800 ms)"),
        (None, 20.0, "p99 not computed by this CloudWatch, at most the max 20.0 ms (limit 800 ms)"),
        (None, None, "p99 n/a, no latency data (limit 800 ms)"),
    ],
)
def test_a_stage_shows_its_p99_latency_beside_the_alarm_threshold(
    p99: float | None, maximum: float | None, shown: str
) -> None:
    checks = HEALTHY.model_copy(update={"challenger_p99_ms": p99, "challenger_max_ms": maximum, "p99_limit_ms": 800.0})

    figures = StageFigures.of(canary(), checks, POLICY, BAKED, "passed")

    assert (figures.p99_latency_ms, figures.max_latency_ms) == (p99, maximum)
    assert f"; {shown}; alarms OK" in figures.describe()
