"""The canary rollout as a small state machine: pure data and one decision function."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RolloutStatus = Literal["idle", "pending", "canary", "promoted", "rolled_back"]
ACTIVE: frozenset[str] = frozenset({"pending", "canary"})


class RollbackRecord(BaseModel):
    """When a bad canary was noticed and how long it took to take it out of traffic."""

    model_config = ConfigDict(extra="forbid")

    challenger_version: int
    reason: str
    canary_started_at: datetime
    detected_at: datetime
    reverted_at: datetime
    weight_at_detection: float

    @property
    def time_to_detect_seconds(self) -> float:
        return (self.detected_at - self.canary_started_at).total_seconds()

    @property
    def time_to_revert_seconds(self) -> float:
        return (self.reverted_at - self.detected_at).total_seconds()


class RolloutEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: datetime
    what: str
    weight: float | None = None


StepAction = Literal["start", "advance", "promote", "rollback"]


class PendingStep(BaseModel):
    """A step written to the state before its alias change is made, and cleared once it is done.

    Every alias change happens between these two compare-and-swap writes, so two actors (a scheduled
    tick, an operator's command) serialize on the state, and whoever finds a step still pending (its
    actor crashed or is slow) finishes it before doing anything else.
    """

    model_config = ConfigDict(extra="forbid")

    action: StepAction
    reason: str
    written_at: datetime
    alias_revision: str | None = Field(default=None, description="the alias's RevisionId when the step was written")


class RolloutState(BaseModel):
    """Everything the controller knows about the current (or last) rollout of one model."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    status: RolloutStatus = "idle"
    paused: bool = False
    challenger_version: int | None = None
    champion_version: int | None = None
    stable_function_version: str | None = None
    canary_function_version: str | None = None
    stage_index: int = -1
    weight: float = 0.0
    requested_at: datetime | None = None
    started_at: datetime | None = None
    stage_started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    pending: PendingStep | None = None
    history: list[RolloutEvent] = Field(default_factory=list)
    rollbacks: list[RollbackRecord] = Field(default_factory=list)
    stage_figures: list[StageFigures] = Field(default_factory=list, description="this rollout's judged stages")

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def desired_routing(self) -> tuple[str, dict[str, float]] | None:
        """Where this state says the alias sends traffic (stable version, canary weights); None if it says nothing."""
        if self.status == "canary" and self.stable_function_version and self.canary_function_version:
            weights = {self.canary_function_version: self.weight} if 0 < self.weight < 1 else {}
            return (self.canary_function_version, {}) if self.weight >= 1 else (self.stable_function_version, weights)
        if self.status == "promoted" and self.canary_function_version:
            return self.canary_function_version, {}
        if self.status == "rolled_back" and self.stable_function_version:
            return self.stable_function_version, {}
        return None

    def note(self, at: datetime, what: str, weight: float | None = None) -> None:
        self.history.append(RolloutEvent(at=at, what=what, weight=weight))
        del self.history[:-200]


class RolloutPolicy(BaseModel):
    """Stages, bake time and the limits a canary must stay within."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stages: tuple[float, ...] = (0.1, 0.5, 1.0)
    bake_seconds: float = Field(default=600.0, ge=0)
    min_requests: int = Field(default=20, ge=0)
    max_error_rate: float = Field(default=0.02, ge=0, le=1)
    max_prediction_psi: float = Field(default=0.25, gt=0)
    max_quality_drop: float = Field(default=0.05, ge=0, description="Relative; labels beat the PSI proxy.")
    min_labeled: int = Field(default=20, ge=1)

    def model_post_init(self, _context: object) -> None:
        weights = list(self.stages)
        if not weights or weights != sorted(weights) or not all(0 < w <= 1 for w in weights) or weights[-1] != 1.0:
            raise ValueError(f"stages must rise within (0, 1] and end at 1.0, got {weights}")


class CanaryChecks(BaseModel):
    """What the controller observed about the challenger since its current stage began."""

    model_config = ConfigDict(extra="forbid")

    alarms_in_alarm: list[str] = Field(default_factory=list)
    challenger_requests: int = 0
    challenger_errors: int = 0
    stable_requests: int = 0
    stable_errors: int = 0
    prediction_psi: float | None = None
    quality_metric: str | None = None
    challenger_quality: float | None = None
    stable_quality: float | None = None
    challenger_labeled: int = 0
    stable_labeled: int = 0
    challenger_p99_ms: float | None = Field(default=None, description="None where CloudWatch computes no percentile")
    challenger_max_ms: float | None = None
    p99_limit_ms: float | None = Field(default=None, description="the threshold of the canary's p99 alarm")
    records_skipped: dict[str, int] = Field(default_factory=dict, description="corrupt capture/outcome records")

    def quality_drop(self, min_labeled: int) -> float | None:
        """Relative loss of the challenger against the stable side on labelled rows (None without enough labels).

        Quality is accuracy for classifiers (higher is better) and MAE for regression (lower is better).
        """
        if min(self.challenger_labeled, self.stable_labeled) < min_labeled:
            return None
        if self.challenger_quality is None or self.stable_quality is None:
            return None
        scale = abs(self.stable_quality) or 1.0
        if self.quality_metric == "mae":
            return (self.challenger_quality - self.stable_quality) / scale
        return (self.stable_quality - self.challenger_quality) / scale

    @property
    def challenger_error_rate(self) -> float:
        total = self.challenger_requests + self.challenger_errors
        return self.challenger_errors / total if total else 0.0


class StageFigures(BaseModel):
    """What one canary stage showed when the controller judged it, beside the limits it was judged by."""

    model_config = ConfigDict(extra="forbid")

    stage: int = Field(ge=1)
    weight: float
    judged_at: datetime
    outcome: str
    requests: int
    error_rate: float
    alarms_in_alarm: list[str] = Field(default_factory=list)
    p99_latency_ms: float | None = None
    max_latency_ms: float | None = None
    prediction_psi: float | None = None
    quality_metric: str | None = None
    quality_drop: float | None = Field(default=None, description="relative loss against the champion's side")
    labeled: int = 0
    limits: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def of(
        cls, state: RolloutState, checks: CanaryChecks, policy: RolloutPolicy, now: datetime, outcome: str
    ) -> StageFigures:
        return cls(
            stage=state.stage_index + 1,
            weight=state.weight,
            judged_at=now,
            outcome=outcome,
            requests=checks.challenger_requests,
            error_rate=checks.challenger_error_rate,
            alarms_in_alarm=list(checks.alarms_in_alarm),
            p99_latency_ms=checks.challenger_p99_ms,
            max_latency_ms=checks.challenger_max_ms,
            prediction_psi=checks.prediction_psi,
            quality_metric=checks.quality_metric,
            quality_drop=checks.quality_drop(policy.min_labeled),
            labeled=checks.challenger_labeled,
            limits={
                "min_requests": float(policy.min_requests),
                "max_error_rate": policy.max_error_rate,
                "max_prediction_psi": policy.max_prediction_psi,
                "max_quality_drop": policy.max_quality_drop,
                "min_labeled": float(policy.min_labeled),
                **({"max_p99_latency_ms": checks.p99_limit_ms} if checks.p99_limit_ms is not None else {}),
            },
        )

    def _latency(self) -> str:
        limit = self.limits.get("max_p99_latency_ms")
        bound = f"limit {limit:g} ms" if limit is not None else "no limit"
        if self.p99_latency_ms is not None:
            return f"p99 {self.p99_latency_ms:.1f} ms ({bound})"
        if self.max_latency_ms is not None:  # max >= p99: an upper bound where CloudWatch gives no percentile
            return f"p99 not computed by this CloudWatch, at most the max {self.max_latency_ms:.1f} ms ({bound})"
        return f"p99 n/a, no latency data ({bound})"

    def describe(self) -> str:
        """One line for ``mlops status``."""
        parts = [
            f"stage {self.stage} ({self.weight:.0%}) {self.outcome}: {self.requests} requests"
            f" (at least {self.limits.get('min_requests', 0):.0f})",
            f"error rate {self.error_rate:.2%} (limit {self.limits.get('max_error_rate', 0):.0%})",
            self._latency(),
            "alarms " + (", ".join(self.alarms_in_alarm) if self.alarms_in_alarm else "OK (errors, p99 latency)"),
        ]
        if self.quality_drop is not None:
            parts.append(
                f"{self.quality_metric} drop {self.quality_drop:+.1%} on {self.labeled} labelled rows"
                f" (limit {self.limits.get('max_quality_drop', 0):.0%})"
            )
        elif self.prediction_psi is not None:
            parts.append(
                f"prediction PSI {self.prediction_psi:.3f} vs the champion"
                f" (limit {self.limits.get('max_prediction_psi', 0):g}; {self.labeled} labelled rows, too few to judge)"
            )
        return "; ".join(parts)


Action = Literal["none", "start", "hold", "advance", "promote", "rollback"]


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    weight: float | None = None
    reason: str


def decide(state: RolloutState, checks: CanaryChecks | None, policy: RolloutPolicy, now: datetime) -> Decision:
    """The next step of a rollout.

    Any failed check rolls back at once, whatever the stage; a stage passes only after its bake
    time and with enough challenger traffic to judge; the last stage (weight 1.0) promotes.

    Args:
        state: the rollout as stored.
        checks: observations of the current stage (None when no canary is running).
        policy: stages, bake time, limits.
        now: the time of this decision.
    """
    if state.paused or state.status not in ("pending", "canary") or (state.status == "canary" and checks is None):
        reason = "paused by an operator" if state.paused else f"no canary running (status {state.status})"
        return Decision(action="none", reason=reason)
    if state.status == "pending" or checks is None:
        return Decision(action="start", weight=policy.stages[0], reason=f"canary v{state.challenger_version}")
    failure = canary_failure(checks, policy)
    if failure is not None:
        return Decision(action="rollback", weight=0.0, reason=failure)
    waiting = _waiting(state, checks, policy, now)
    if waiting is not None:
        return Decision(action="hold", weight=state.weight, reason=waiting)
    following = state.stage_index + 1
    if following >= len(policy.stages) or policy.stages[following] >= 1.0:
        # The last stage, 100%, is the promotion itself: the alias then serves the new version alone.
        return Decision(action="promote", weight=1.0, reason="all stages passed")
    return Decision(action="advance", weight=policy.stages[state.stage_index + 1], reason="stage passed")


def canary_failure(checks: CanaryChecks, policy: RolloutPolicy) -> str | None:
    """Why the challenger must be rolled back now, or None while it behaves."""
    if checks.alarms_in_alarm:
        return f"alarm: {', '.join(sorted(checks.alarms_in_alarm))}"
    attempts = checks.challenger_requests + checks.challenger_errors
    if attempts >= policy.min_requests and checks.challenger_error_rate > policy.max_error_rate:
        return f"challenger error rate {checks.challenger_error_rate:.1%} > {policy.max_error_rate:.1%}"
    drop = checks.quality_drop(policy.min_labeled)
    if drop is not None:
        # Ground truth for both sides decides; the prediction-distribution proxy is for when there is none
        # (a model retrained on drifted data is expected to disagree with the champion it replaces).
        if drop > policy.max_quality_drop:
            return (
                f"challenger {checks.quality_metric} {checks.challenger_quality:.3f} vs champion "
                f"{checks.stable_quality:.3f} on labelled traffic: {drop:.1%} worse "
                f"(limit {policy.max_quality_drop:.0%})"
            )
        return None
    if checks.prediction_psi is not None and checks.prediction_psi > policy.max_prediction_psi:
        return (
            f"prediction distribution differs from the champion's: PSI {checks.prediction_psi:.3f} "
            f"> {policy.max_prediction_psi}"
        )
    return None


def _waiting(state: RolloutState, checks: CanaryChecks, policy: RolloutPolicy, now: datetime) -> str | None:
    if state.stage_started_at is None or (now - state.stage_started_at).total_seconds() < policy.bake_seconds:
        return "baking"
    attempts = checks.challenger_requests + checks.challenger_errors
    if attempts < policy.min_requests:
        return f"waiting for traffic: {attempts}/{policy.min_requests} challenger requests"
    return None


RolloutState.model_rebuild()
