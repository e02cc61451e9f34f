"""The rollout controller: one idempotent tick at a time, plus the operator's commands."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np

from functions.adapters.capture_reader import S3CaptureReader
from functions.adapters.cloudwatch import CloudWatchAdapter
from functions.adapters.codedeploy import CodeDeployWatcher
from functions.adapters.events import ROLLOUT_FINISHED, EventBridgePublisher
from functions.adapters.lambda_alias import LambdaAliasDeployer
from functions.adapters.locks import S3DeployLock
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.adapters.skipped import SkippedRecords
from functions.domain.baseline import bin_counts
from functions.domain.card import ModelCard
from functions.domain.rollout import (
    CanaryChecks,
    Decision,
    PendingStep,
    RollbackRecord,
    RolloutPolicy,
    RolloutState,
    StageFigures,
    StepAction,
    decide,
)
from functions.errors import ConcurrentUpdateError, MlopsError
from functions.observability import logger


class RolloutError(MlopsError):
    """An operator command that does not fit the rollout's current state."""

    code = "rollout_error"


class AliasBusyError(RolloutError):
    """Someone else (a CodeDeploy deployment) is shifting the alias; the canary must not start now."""

    code = "alias_busy"


@dataclass
class RolloutPorts:
    """Everything the controller talks to."""

    store: S3RolloutStore
    registry: S3ModelRegistry
    deployer: LambdaAliasDeployer
    cloudwatch: CloudWatchAdapter
    capture: S3CaptureReader
    alarm_prefix: str  # StageConfig.canary_alarm_prefix: the IAM scope of the controller's alarm rights
    outcomes: S3OutcomeStore | None = None
    publisher: EventBridgePublisher | None = None
    max_p99_latency_ms: float = 1000.0
    alarm_actions: list[str] = field(default_factory=list)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    deploy_lock: S3DeployLock | None = None  # held by a code deploy: the tick makes no step
    deployments: CodeDeployWatcher | None = None  # CodeDeploy's unfinished deployments: no canary starts


@dataclass
class TickResult:
    action: str
    reason: str
    state: RolloutState
    records_skipped: dict[str, int] = field(default_factory=dict)  # corrupt records the observation skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "reason": self.reason,
            "state": self.state.model_dump(mode="json"),
            "records_skipped": dict(self.records_skipped),
        }


# -- observations -------------------------------------------------------------------------------
def _dims(ports: RolloutPorts, model_name: str, version: int) -> dict[str, str]:
    return {"model_name": model_name, "model_version": str(version)}


def alarm_names(ports: RolloutPorts, model_name: str, version: int) -> list[str]:
    base = f"{ports.alarm_prefix}-{model_name}-v{version}"
    return [f"{base}-errors", f"{base}-p99-latency"]


def _create_alarms(ports: RolloutPorts, model_name: str, version: int) -> None:
    errors, latency = alarm_names(ports, model_name, version)
    dims = _dims(ports, model_name, version)
    ports.cloudwatch.put_alarm(
        errors,
        "Errors",
        dims,
        0.0,
        description=f"5xx on the canary of {model_name} v{version}",
        actions=ports.alarm_actions,
    )
    ports.cloudwatch.put_alarm(
        latency,
        "PredictLatency",
        dims,
        ports.max_p99_latency_ms,
        statistic="p99",
        description=f"p99 latency of the canary of {model_name} v{version}",
        actions=ports.alarm_actions,
    )


def served_rows(
    ports: RolloutPorts,
    model_name: str,
    versions: tuple[int, int],
    *,
    start: datetime,
    end: datetime,
    skipped: SkippedRecords | None = None,
) -> dict[int, list[tuple[str, Any]]]:
    """``(row id, prediction)`` of every captured row each version served in the period: one read of capture."""
    rows: dict[int, list[tuple[str, Any]]] = {v: [] for v in versions}
    for request in ports.capture.iter_requests(model_name, start, end, skipped=skipped):
        if request.model_version in rows:
            rows[request.model_version].extend(zip(request.row_ids, request.predictions, strict=True))
    return rows


def prediction_psi(champion: ModelCard, stable: list[Any], canary: list[Any], min_rows: int) -> float | None:
    """PSI of the challenger's answers against the champion's on the same period (None if too few rows):
    predicted-label frequencies for classifiers, value bins of the champion's baseline for regression."""
    from functions.domain.drift import psi

    if len(stable) < max(min_rows, 1) or len(canary) < max(min_rows, 1):
        return None
    baseline = champion.baseline.prediction
    # Classifiers are compared on predicted labels, not probability bins: another model family
    # calibrates differently and would look "drifted" on probabilities while agreeing on answers.
    if champion.is_classifier or baseline.edges is None:
        labels = [str(c) for c in (champion.classes or sorted({str(v) for v in stable}))]
        index = {label: i for i, label in enumerate(labels)}

        def counts(values: list[Any]) -> np.ndarray:
            out = np.zeros(len(labels) + 1)
            for value in values:
                out[index.get(str(value), len(labels))] += 1
            return out

        return float(psi(counts(stable), counts(canary)))
    edges = np.asarray(baseline.edges)
    return float(
        psi(bin_counts(np.asarray(stable, dtype=float), edges), bin_counts(np.asarray(canary, dtype=float), edges))
    )


def labelled_quality(
    champion: ModelCard, rows: dict[int, list[tuple[str, Any]]], actuals: dict[str, Any]
) -> dict[int, tuple[float, int]]:
    """Accuracy (classifiers) or MAE (regression) and labelled row count per model version."""
    out: dict[int, tuple[float, int]] = {}
    for version, served in rows.items():
        pairs = [(predicted, actuals[row_id]) for row_id, predicted in served if row_id in actuals]
        if not pairs:
            continue
        if champion.task == "regression":
            value = float(np.mean([abs(float(p) - float(a)) for p, a in pairs]))
        else:
            value = float(np.mean([p == a for p, a in pairs]))
        out[version] = (value, len(pairs))
    return out


def observe(ports: RolloutPorts, state: RolloutState, policy: RolloutPolicy, now: datetime) -> CanaryChecks:
    """Alarms, error counts and the prediction distribution of the current stage."""
    assert state.challenger_version is not None and state.champion_version is not None
    start = state.stage_started_at or state.started_at or now
    name = state.model_name
    canary, stable = state.challenger_version, state.champion_version
    champion = ports.registry.get_card(name, stable)
    cw = ports.cloudwatch
    skipped = SkippedRecords()
    rows = served_rows(ports, name, (stable, canary), start=start, end=now, skipped=skipped)
    actuals = ports.outcomes.read_since(name, start, skipped=skipped) if ports.outcomes is not None else {}
    if skipped.total:
        logger.warning("rollout: corrupt records skipped", extra={"skipped": skipped.examples})
    quality = labelled_quality(champion, rows, actuals)
    answers = {version: [prediction for _, prediction in served] for version, served in rows.items()}
    return CanaryChecks(
        alarms_in_alarm=cw.alarms_in_alarm(alarm_names(ports, name, canary)),
        challenger_requests=int(cw.total("Predictions", _dims(ports, name, canary), start, now)),
        challenger_p99_ms=cw.percentile("PredictLatency", _dims(ports, name, canary), start, now, 99),
        challenger_max_ms=cw.maximum("PredictLatency", _dims(ports, name, canary), start, now),
        p99_limit_ms=ports.max_p99_latency_ms,
        challenger_errors=int(cw.total("Errors", _dims(ports, name, canary), start, now)),
        stable_requests=int(cw.total("Predictions", _dims(ports, name, stable), start, now)),
        stable_errors=int(cw.total("Errors", _dims(ports, name, stable), start, now)),
        prediction_psi=prediction_psi(champion, answers[stable], answers[canary], policy.min_requests),
        quality_metric="mae" if champion.task == "regression" else "accuracy",
        challenger_quality=quality.get(canary, (None, 0))[0],
        stable_quality=quality.get(stable, (None, 0))[0],
        challenger_labeled=quality.get(canary, (None, 0))[1],
        stable_labeled=quality.get(stable, (None, 0))[1],
        records_skipped=skipped.as_dict(),
    )


# -- steps ----------------------------------------------------------------------------------------
def _start(ports: RolloutPorts, state: RolloutState, policy: RolloutPolicy, now: datetime) -> None:
    assert state.challenger_version is not None
    name = state.model_name
    # A queued or created deployment has not moved a weight yet, so the alias alone does not show it.
    if ports.deployments is not None and (deploying := ports.deployments.in_progress()):
        raise AliasBusyError(
            f"CodeDeploy deployment {', '.join(deploying)} of {ports.deployments.group} has not finished; "
            "the canary waits"
        )
    if state.champion_version is None:
        state.champion_version = ports.registry.get_aliases(name).get("champion")
    routing = ports.deployer.routing()
    foreign = {
        v: w
        for v, w in routing.weights.items()
        if w > 0 and ports.deployer.pinned_model_version(v) != state.challenger_version  # ours, if a crash left it
    }
    if foreign:
        # CodeDeploy shifts a code deployment through the same alias weights: never fight it.
        shifting = ", ".join(f"Lambda version {v} at {w:.0%}" for v, w in foreign.items())
        raise AliasBusyError(f"the alias is shifting traffic ({shifting}), e.g. a code deployment; waiting")
    canary_fn = ports.deployer.publish_pinned(state.challenger_version)
    stable_fn = routing.stable_version if routing.stable_version != canary_fn else state.stable_function_version
    if stable_fn is None:
        raise RolloutError(f"the alias already serves v{state.challenger_version}; nothing to canary")
    _create_alarms(ports, name, state.challenger_version)
    state.status, state.stage_index, state.weight = "canary", 0, policy.stages[0]
    state.stage_figures = []
    state.stable_function_version, state.canary_function_version = stable_fn, canary_fn
    state.started_at = state.stage_started_at = now
    state.note(now, f"canary of v{state.challenger_version} (Lambda version {canary_fn}) started", policy.stages[0])


def _check_alias_is_ours(ports: RolloutPorts, state: RolloutState) -> None:
    """Refuse to move the alias when someone else (a code deployment) re-pointed it since the canary began."""
    stable = ports.deployer.routing().stable_version
    if stable not in (state.stable_function_version, state.canary_function_version):
        raise AliasBusyError(
            f"the alias now serves Lambda version {stable}, not the canary's stable version "
            f"{state.stable_function_version} (a code deployment?); waiting for an operator"
        )


def _advance(state: RolloutState, decision: Decision, now: datetime) -> None:
    assert state.stable_function_version and state.canary_function_version and decision.weight is not None
    state.stage_index += 1
    state.weight, state.stage_started_at = decision.weight, now
    state.note(
        now, f"stage {state.stage_index + 1}: {decision.weight:.0%} to v{state.challenger_version}", decision.weight
    )


def _promote(state: RolloutState, now: datetime, reason: str) -> None:
    assert state.canary_function_version and state.challenger_version is not None
    state.status, state.weight, state.finished_at = "promoted", 1.0, now
    state.note(now, f"v{state.challenger_version} promoted to champion ({reason})", 1.0)


def _rollback(state: RolloutState, now: datetime, reason: str) -> None:
    assert state.stable_function_version and state.challenger_version is not None
    state.rollbacks.append(
        RollbackRecord(
            challenger_version=state.challenger_version,
            reason=reason,
            canary_started_at=state.started_at or now,
            detected_at=now,
            reverted_at=now,  # set again when the alias has moved
            weight_at_detection=state.weight,
        )
    )
    state.status, state.weight, state.finished_at = "rolled_back", 0.0, now
    state.note(now, f"v{state.challenger_version} rolled back: {reason}", 0.0)


# -- making a step: write it, move the alias, mark it done ------------------------------------------------
def _routing_is(ports: RolloutPorts, stable: str, weights: dict[str, float]) -> bool:
    routing = ports.deployer.routing()
    return (
        routing.stable_version == stable
        and routing.weights.keys() == weights.keys()
        and all(abs(routing.weights[v] - w) < 1e-9 for v, w in weights.items())
    )


def _move_alias(ports: RolloutPorts, target: tuple[str, dict[str, float]], revision: str | None) -> None:
    """Make the alias route as ``target`` says, unless it already does (a step may be made twice)."""
    stable, weights = target
    if _routing_is(ports, stable, weights):
        return
    try:
        if weights:
            ((canary, weight),) = weights.items()
            ports.deployer.set_canary(stable, canary, weight, revision_id=revision)
        else:
            ports.deployer.route_all(stable, revision_id=revision)
    except MlopsError as exc:
        if _routing_is(ports, stable, weights):
            return
        raise AliasBusyError(f"the alias changed since this step was written ({exc.message}); waiting") from exc


def _apply(ports: RolloutPorts, state: RolloutState) -> None:
    """Make the pending step: the alias as the state says, and the registry records the step implies.

    Idempotent, so a step found pending (its actor crashed or is slow) is simply made again.
    """
    step, target = state.pending, state.desired_routing()
    assert step is not None and target is not None and state.challenger_version is not None
    name, version = state.model_name, state.challenger_version
    if step.action == "promote":  # the registry first: a refused alias update leaves traffic where it was
        aliases = ports.registry.get_aliases(name)
        if aliases.get("champion") != version:
            try:
                ports.registry.set_aliases(
                    name,
                    {"champion": version, "previous": state.champion_version, "challenger": None},
                    expect={"champion": state.champion_version},
                    reason=f"rollout promoted v{version}: {step.reason}",
                )
            except ConcurrentUpdateError as exc:
                raise RolloutError(
                    f"the registry's champion is no longer v{state.champion_version}, so v{version} cannot be "
                    "promoted over it; traffic stays where it is until an operator runs `mlops rollback`"
                ) from exc
        ports.registry.set_status(name, version, "champion", step.reason)
    _move_alias(ports, target, step.alias_revision)
    if step.action == "rollback":
        aliases = ports.registry.get_aliases(name)
        if aliases.get("challenger") == version:
            try:
                ports.registry.set_aliases(
                    name, {"challenger": None}, expect={"challenger": version}, reason=f"rolled back: {step.reason}"
                )
            except ConcurrentUpdateError:
                pass  # someone moved the challenger meanwhile; the rollback itself is done
        ports.registry.set_status(name, version, "rejected", f"rolled back during canary: {step.reason}")
    if step.action in ("promote", "rollback"):
        ports.cloudwatch.delete_alarms(alarm_names(ports, name, version))


def _done(ports: RolloutPorts, state: RolloutState, etag: str) -> tuple[RolloutState, str | None]:
    """Mark the pending step done (compare-and-swap); returns the state as stored afterwards and its ETag.

    If another actor wrote meanwhile (it finished this step, and perhaps took another), this actor's
    alias change may have landed after theirs: the alias is set again to what the latest state says.
    """
    step = state.pending
    assert step is not None
    finished = ports.clock()
    if step.action == "rollback" and state.rollbacks:
        state.rollbacks[-1].reverted_at = finished
        state.finished_at = finished
    state.pending = None
    try:
        return state, ports.store.save(state, etag)
    except ConcurrentUpdateError:
        latest, latest_etag = ports.store.load(state.model_name)
        target = latest.desired_routing()
        if latest.pending is None and target is not None:
            _move_alias(ports, target, None)
        return latest, latest_etag


def _commit(
    ports: RolloutPorts, state: RolloutState, etag: str | None, action: StepAction, reason: str
) -> RolloutState:
    """Write the step to the state (compare-and-swap), make it, mark it done.

    Raises:
        ConcurrentUpdateError: another actor wrote the state first; nothing was changed.
    """
    revision = ports.deployer.routing().revision_id
    state.pending = PendingStep(action=action, reason=reason, written_at=ports.clock(), alias_revision=revision)
    written = ports.store.save(state, etag)
    _apply(ports, state)
    return _done(ports, state, written)[0]


def _finish_pending(ports: RolloutPorts, state: RolloutState, etag: str | None) -> tuple[RolloutState, str | None]:
    """Make a step found pending and mark it done; the state and ETag to go on from."""
    assert state.pending is not None and etag is not None
    _apply(ports, state)
    return _done(ports, state, etag)


def _announce(ports: RolloutPorts, state: RolloutState, action: str, reason: str) -> None:
    if action in ("promote", "rollback") and ports.publisher is not None:
        ports.publisher.publish(
            ROLLOUT_FINISHED,
            {
                "model_name": state.model_name,
                "version": state.challenger_version,
                "outcome": state.status,
                "reason": reason,
            },
        )


def _tick_pending(ports: RolloutPorts, state: RolloutState, etag: str | None) -> TickResult:
    step = state.pending
    assert step is not None
    try:
        state, _ = _finish_pending(ports, state, etag)
    except RolloutError as exc:  # the alias moved under it, or the registry refuses the step
        return TickResult("hold", exc.message, state)
    _announce(ports, state, step.action, step.reason)
    return TickResult(step.action, f"finished the step written at {step.written_at:%H:%M:%S}: {step.reason}", state)


# -- entry points -----------------------------------------------------------------------------------
def tick(ports: RolloutPorts, model_name: str, policy: RolloutPolicy) -> TickResult:
    """Look at the rollout once and take at most one step. Safe to run twice or concurrently: every
    alias change is written to the state first and marked done after, both by compare-and-swap, and a
    step found pending (a crash, a slower actor) is finished before anything else. While a code deploy
    holds the deploy lock, nothing else: it holds (operator commands are not held)."""
    now = ports.clock()
    state, etag = ports.store.load(model_name)
    if state.pending is not None:  # finished even under the deploy lock: it may have moved the alias halfway
        return _tick_pending(ports, state, etag)
    deploy = ports.deploy_lock.current() if ports.deploy_lock is not None else None
    if deploy is not None:
        reason = f"a code deploy holds the deploy lock: {deploy.describe()}; no canary starts and no step is made"
        return TickResult("hold", reason, state)
    checks = observe(ports, state, policy, now) if state.status == "canary" and not state.paused else None
    decision = decide(state, checks, policy, now)
    skipped = checks.records_skipped if checks is not None else {}
    if decision.action in ("none", "hold"):
        return TickResult(decision.action, decision.reason, state, skipped)
    if checks is not None and decision.action in ("advance", "promote", "rollback"):
        outcome = {"advance": "passed", "promote": "passed, promoted", "rollback": "rolled back"}[decision.action]
        state.stage_figures.append(StageFigures.of(state, checks, policy, now, f"{outcome} ({decision.reason})"))
    try:
        if decision.action == "start":
            _start(ports, state, policy, now)
        elif decision.action == "advance":
            _check_alias_is_ours(ports, state)
            _advance(state, decision, now)
        elif decision.action == "promote":
            _check_alias_is_ours(ports, state)
            _promote(state, now, decision.reason)
        else:
            _rollback(state, now, decision.reason)
        state = _commit(ports, state, etag, cast(StepAction, decision.action), decision.reason)
    except AliasBusyError as exc:
        return TickResult("hold", exc.message, ports.store.load(model_name)[0], skipped)
    except ConcurrentUpdateError:
        reason = "another actor changed the rollout meanwhile; the next tick looks again"
        return TickResult("hold", reason, ports.store.load(model_name)[0], skipped)
    _announce(ports, state, decision.action, decision.reason)
    return TickResult(decision.action, decision.reason, state, skipped)


OPERATOR_ATTEMPTS = 5


def _as_operator(
    ports: RolloutPorts,
    model_name: str,
    act: Callable[[RolloutState, str | None], TickResult],
    *,
    command: StepAction | None = None,
    undo: bool = False,
) -> TickResult:
    """Run an operator command on the latest state, after finishing any step found pending; retried when
    another actor (a tick) writes the state at the same moment. A pending step of the same ``command``
    (one interrupted earlier) is finished and is the command's result. With ``undo``, a pending step that
    cannot be finished is overridden (a rollback takes traffic back whatever the step was)."""
    for _ in range(OPERATOR_ATTEMPTS):
        state, etag = ports.store.load(model_name)
        try:
            step = state.pending
            if step is not None:
                try:
                    state, etag = _finish_pending(ports, state, etag)
                except RolloutError:
                    if not undo:
                        raise
                    # Overridden by the rollback below, which moves the alias itself; a promotion that never
                    # happened leaves the canary where the alias really has it.
                    if step.action == "promote" and state.canary_function_version:
                        state.status = "canary"
                        state.weight = ports.deployer.routing().weights.get(state.canary_function_version, 0.0)
                        state.note(ports.clock(), "unfinished promotion overridden by an operator", state.weight)
                    state.pending = None
                else:
                    if step.action == command:
                        _announce(ports, state, step.action, step.reason)
                        return TickResult(step.action, f"finished the interrupted {command}: {step.reason}", state)
            return act(state, etag)
        except ConcurrentUpdateError:
            continue
    raise ConcurrentUpdateError(f"the rollout of {model_name} kept changing under this command; run it again")


def promote(ports: RolloutPorts, model_name: str, policy: RolloutPolicy, *, canary: bool = False) -> TickResult:
    """Operator: finish a running canary now, or make a waiting challenger champion now (``make_champion``);
    with ``canary``, request the waiting challenger's stepped canary instead (the next tick starts it)."""

    def act(state: RolloutState, etag: str | None) -> TickResult:
        if state.status == "canary":
            reason = "promoted by an operator"
            _promote(state, ports.clock(), reason)
            state = _commit(ports, state, etag, "promote", reason)
            _announce(ports, state, "promote", reason)
            return TickResult("promote", reason, state)
        challenger = ports.registry.get_aliases(model_name).get("challenger")
        if challenger is None:
            raise RolloutError(f"{model_name} has no challenger to promote and no canary running")
        if not canary:
            return make_champion(ports, model_name, challenger, "promoted by an operator without a canary")
        champion = ports.registry.get_aliases(model_name).get("champion")
        if not ports.store.request(model_name, challenger, champion, "requested by an operator"):
            raise RolloutError("a rollout is already pending")
        return TickResult(
            "requested", f"canary of v{challenger} requested; the next tick starts it", ports.store.load(model_name)[0]
        )

    return _as_operator(ports, model_name, act, command="promote")


def make_champion(ports: RolloutPorts, model_name: str, version: int, reason: str) -> TickResult:
    """Operator: make ``version`` champion now, beside the stepped canary: the controller publishes a
    Lambda version pinned to it and moves the whole alias there, under the state's compare-and-swap
    (write the step, make it, mark it done), as a finished canary does. Refused while a canary runs."""

    def act(state: RolloutState, etag: str | None) -> TickResult:
        # A requested (not started) canary of this very version is superseded by promoting it now.
        superseded = state.status == "pending" and state.challenger_version == version
        if state.status in ("canary", "pending") and not superseded:
            raise RolloutError(
                f"a rollout of v{state.challenger_version} is {state.status}: finish it (`mlops promote`) or roll it"
                " back (`mlops rollback`) first"
            )
        card = ports.registry.get_card(model_name, version)  # raises for a version that does not exist
        champion = ports.registry.get_aliases(model_name).get("champion")
        if champion == version and state.status == "promoted" and state.challenger_version == version:
            return TickResult("none", f"v{version} is champion and serves the alias already", state)
        now = ports.clock()
        routing = ports.deployer.routing()
        pinned = ports.deployer.publish_pinned(card.version)
        state.status, state.paused, state.weight = "promoted", False, 1.0
        state.challenger_version, state.champion_version = version, champion
        state.stable_function_version, state.canary_function_version = routing.stable_version, pinned
        state.requested_at = state.started_at = state.stage_started_at = state.finished_at = now
        state.stage_figures, state.reason = [], reason
        state.note(now, f"v{version} made champion at once (Lambda version {pinned}): {reason}", 1.0)
        state = _commit(ports, state, etag, "promote", reason)
        _announce(ports, state, "promote", reason)
        return TickResult("promote", reason, state)

    return _as_operator(ports, model_name, act)


def restore_previous(ports: RolloutPorts, model_name: str, reason: str = "restored by an operator") -> TickResult:
    """Operator: after a promotion, make the previous champion champion again (through ``make_champion``)."""
    previous = ports.registry.get_aliases(model_name).get("previous")
    if previous is None:
        raise RolloutError(f"{model_name} has no previous champion to restore")
    return make_champion(ports, model_name, previous, reason)


def rollback(ports: RolloutPorts, model_name: str, reason: str = "rolled back by an operator") -> TickResult:
    """Operator: end a running canary now (weight to 0, challenger rejected)."""

    def act(state: RolloutState, etag: str | None) -> TickResult:
        now = ports.clock()
        if state.status not in ("canary", "pending"):
            raise RolloutError(f"no canary of {model_name} is running (status {state.status})")
        if state.status == "pending":
            state.status, state.finished_at = "rolled_back", now
            state.note(now, f"pending rollout of v{state.challenger_version} cancelled: {reason}")
            ports.store.save(state, etag)
            return TickResult("rollback", reason, state)
        _rollback(state, now, reason)
        state = _commit(ports, state, etag, "rollback", reason)
        _announce(ports, state, "rollback", reason)
        return TickResult("rollback", reason, state)

    return _as_operator(ports, model_name, act, command="rollback", undo=True)


def pause(ports: RolloutPorts, model_name: str, paused: bool = True) -> TickResult:
    """Operator: hold the rollout where it is (weights unchanged) or let it go on."""

    def act(state: RolloutState, etag: str | None) -> TickResult:
        state.paused = paused
        state.note(ports.clock(), "paused by an operator" if paused else "resumed by an operator", state.weight)
        ports.store.save(state, etag)
        return TickResult("pause" if paused else "resume", "operator", state)

    return _as_operator(ports, model_name, act)
