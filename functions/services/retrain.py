"""Retraining: the champion's recipe on its base dataset plus labelled traffic, gated against the champion.

One run, in order: cooldown check; lock; (under the lock) cooldown again and no rollout under
way; resolve the champion; assemble the training data (base dataset + captured rows that have
outcomes, one row per row id; with no such rows only an operator's request goes on, since the
candidate would merely relearn the champion's data); split off held-out rows the candidate never
trains on; train the candidate with the champion's estimator; score candidate and champion on
the same held-out rows; convert it to ONNX and check the graph against the pipeline (a graph that
differs is a rejection like any failed gate); measure the graph's 1-row latency and size; apply
the gates. A rejected
candidate is recorded under ``models/<name>/rejections/`` and nothing else changes. A passing
one is registered (parent: the champion), becomes ``challenger`` (only if the champion is still
the one it was compared with), a rollout is requested when auto-deploy is on, and
``CandidateRegistered`` is published. The lock is always released; the cooldown record notes
the start and the outcome of every run that got past the lock.

The held-out rows are drawn from all the data, so they may include base rows the champion was
trained on: that flatters the champion, which only makes the metric gate stricter.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
from sklearn.model_selection import train_test_split

from functions.adapters.capture_reader import CapturedRequest, S3CaptureReader
from functions.adapters.datasets import S3DatasetStore
from functions.adapters.events import CANDIDATE_REGISTERED, EventBridgePublisher
from functions.adapters.locks import Lease, RetrainEvidence, RetrainRun, S3RetrainHistory, S3RetrainLock, utc_now
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.adapters.skipped import SkippedRecords
from functions.domain.baseline import compute_baseline
from functions.domain.card import (
    CLASSIFICATION_TASKS,
    CapturedRowsRef,
    DriftBaseline,
    ModelCard,
    TrainingDataRef,
    TrainingSpec,
)
from functions.domain.dataset import Dataset, parse_csv
from functions.domain.gates import GateDecision, GatePolicy, compare_schemas, evaluate_gates
from functions.domain.inference import ServingGraph
from functions.domain.packaging import CardFacts, PackagedModel, card_builder, package_model
from functions.domain.pipeline_io import load_pipeline
from functions.domain.schema import FeatureSpec
from functions.domain.training import LOWER_IS_BETTER, PRIMARY_METRIC, TrainedModel, evaluate, model_outputs, train
from functions.errors import ConcurrentUpdateError, GraphFidelityError, MlopsError, TrainingError
from functions.observability import logger
from functions.settings import RetrainSettings

Status = Literal["registered", "rejected", "skipped", "failed"]
TriggerKind = Literal["schedule", "drift", "performance", "operator"]
Progress = Callable[[str], None]
LATENCY_CALLS = 7


# PSI a feature must add over the last retrain's to count as drifting further (PSI's own noise is ~0.01).
PSI_MARGIN = 0.05


@dataclass(frozen=True)
class Trigger:
    """Why this retrain runs.

    Attributes:
        kind: schedule, drift (ModelDriftDetected), performance (ModelPerformanceDegraded) or operator.
        detail: the event's detail-type and id, or the operator's note.
        force: skip the cooldown (operators only); the lock is never skipped.
    """

    kind: TriggerKind
    detail: str = ""
    force: bool = False
    drift_psi: Mapping[str, float] = field(default_factory=dict)  # a drift event's drifted features and PSI
    shift_since: datetime | None = None  # a drift event's end of the last calm window: the shift began after it

    def describe(self) -> str:
        text = self.kind + (f" ({self.detail})" if self.detail else "")
        return text + (", forced" if self.force else "")


@dataclass(frozen=True)
class RetrainOptions:
    """The retrain's gates, windows and switches (see ``RetrainSettings``)."""

    policy: GatePolicy = field(default_factory=GatePolicy)
    cooldown_seconds: float = 3600.0
    capture_days: float = 30.0
    validation_fraction: float = 0.25
    auto_deploy: bool = True
    random_state: int = 42
    min_captured_rows: int = 1

    @classmethod
    def from_settings(cls, settings: RetrainSettings) -> RetrainOptions:
        return cls(
            policy=GatePolicy(
                metric_tolerance=settings.metric_tolerance,
                latency_budget_ms=settings.latency_budget_ms,
                artifact_budget_bytes=settings.artifact_budget_bytes,
            ),
            cooldown_seconds=settings.cooldown_seconds,
            capture_days=settings.capture_days,
            validation_fraction=settings.validation_fraction,
            auto_deploy=settings.auto_deploy,
        )


@dataclass
class RetrainPorts:
    """Everything a retrain talks to."""

    registry: S3ModelRegistry
    datasets: S3DatasetStore
    capture: S3CaptureReader
    outcomes: S3OutcomeStore
    lock: S3RetrainLock
    history: S3RetrainHistory
    rollouts: S3RolloutStore
    publisher: EventBridgePublisher | None = None
    clock: Callable[[], datetime] = utc_now


@dataclass
class RetrainResult:
    """What one retrain did. ``as_dict`` is the contract the handler, the local runtime and the CLI share.

    Attributes:
        status: ``registered``, ``rejected``, ``skipped`` or ``failed``.
        reasons: why it was skipped, rejected (one per failed gate) or failed; for ``registered``,
            notes such as "auto-deploy is off" or an event that could not be published.
        started: it got past the cooldown and the lock (and so started the cooldown).
        champion_version: the champion it was compared with. candidate_version: the version registered.
        rollout_requested: a rollout of the candidate was requested (auto-deploy).
        events: what it published (``detail_type``, ``detail``, ``event_id``).
        metrics: ``primary_metric``, ``lower_is_better``, all ``candidate`` and ``champion`` metrics on
            the held-out rows, ``holdout_rows``, ``latency_ms_1row``, ``artifact_bytes``.
        gates: per gate its value, limit and ``passed``. training_rows: total, base, captured, dropped.
        rejection_key: where a rejected candidate's record was written.
    """

    status: Status
    model_name: str
    trigger: str
    reasons: list[str] = field(default_factory=list)
    started: bool = False
    champion_version: int | None = None
    candidate_version: int | None = None
    rollout_requested: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    gates: dict[str, Any] = field(default_factory=dict)
    training_rows: dict[str, int] = field(default_factory=dict)
    rejection_key: str | None = None
    error: BaseException | None = None  # a failure's exception, for the handler's log; not in as_dict

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "model_name": self.model_name,
            "trigger": self.trigger,
            "reasons": list(self.reasons),
            "started": self.started,
            "champion_version": self.champion_version,
            "candidate_version": self.candidate_version,
            "rollout_requested": self.rollout_requested,
            "events": self.events,
            "metrics": self.metrics,
            "gates": self.gates,
            "training_rows": self.training_rows,
            "rejection_key": self.rejection_key,
        }


def retrain(
    ports: RetrainPorts,
    model_name: str,
    options: RetrainOptions,
    trigger: Trigger,
    progress: Progress = lambda _msg: None,
) -> RetrainResult:
    """Retrain ``model_name`` once, if the cooldown and the lock allow it.

    Args:
        ports: registry, stores, lock, history, rollout store, publisher and clock.
        model_name: the model whose champion is retrained.
        options: gate policy, cooldown, capture window, held-out fraction, auto-deploy.
        trigger: why it runs; ``trigger.force`` skips the cooldown, never the lock.
        progress: called with one line per step.

    Returns:
        The result: ``registered``, ``rejected``, ``skipped`` (with the reason) or ``failed``
        (the exception is in ``error``; the champion is untouched and the lock released).
    """
    run = _Run(ports, model_name, options, trigger, progress)
    waiting = run.cooldown_reason()
    if waiting:
        return run.skip(waiting)
    lease = ports.lock.acquire(model_name, holder=trigger.describe())
    if lease is None:
        return run.skip(_lock_held_reason(ports.lock, model_name))
    if lease.took_over_from:
        progress(f"took over an expired retrain lock (its holder {lease.took_over_from} did not release it)")
    try:
        return run.locked(lease)
    finally:
        try:
            if not ports.lock.release(lease):
                progress("the retrain lock was no longer ours when releasing it (it expired and was taken over)")
        except MlopsError as exc:
            # The run's outcome stands; the lock expires by itself after its TTL.
            run.note(f"the retrain lock could not be released ({exc.message}); it expires at {lease.expires_at}")


def describe_failure(exc: BaseException) -> str:
    """A failure's reason for the result: our own errors say what went wrong, others only their type."""
    if isinstance(exc, MlopsError):
        return f"{exc.code}: {exc.message}"
    return f"unexpected {type(exc).__name__}; the retrain function's logs have the details"


def _lock_held_reason(lock: S3RetrainLock, model_name: str) -> str:
    held = lock.current(model_name)
    if held is None or held.document is None:
        return "another retrain holds the lock"
    doc = held.document
    return (
        f"another retrain holds the lock ({doc.holder or 'unknown trigger'}, since {doc.acquired_at.isoformat()}, "
        f"expires {doc.expires_at.isoformat()})"
    )


class _Run:
    """The steps of one retrain, sharing its ports, options and the result being built."""

    def __init__(
        self, ports: RetrainPorts, model_name: str, options: RetrainOptions, trigger: Trigger, progress: Progress
    ) -> None:
        self.ports = ports
        self.model_name = model_name
        self.options = options
        self.trigger = trigger
        self.progress = progress
        self.result = RetrainResult(status="skipped", model_name=model_name, trigger=trigger.describe())
        self.evidence: RetrainEvidence | None = None

    def note(self, reason: str) -> None:
        self.result.reasons.append(reason)
        self.progress(reason)

    def no_new_evidence(self, data: TrainingData) -> str | None:
        """Why a drift event brings nothing the last retrain did not have, or None when it does.

        Nothing new: the labelled captured rows are the very ones the last retrain used, and no
        feature drifted further (higher PSI) than in the event that triggered it. A shift that
        persists then leads to one retrain, not one per cooldown.
        """
        last = self.evidence
        if self.trigger.kind != "drift" or last is None:
            return None
        if data.captured_ids_sha256 != last.captured_rows_sha256:
            return None
        further = [
            name for name, value in self.trigger.drift_psi.items() if value > last.drift_psi.get(name, 0.0) + PSI_MARGIN
        ]
        if further:
            return None
        return (
            f"no new evidence since the last retrain: the same {data.captured_rows} labelled captured rows, and no"
            " feature drifted further than then"
        )

    def skip(self, reason: str) -> RetrainResult:
        self.progress(f"retrain skipped: {reason}")
        self.result.status, self.result.reasons = "skipped", [reason]
        return self.result

    def cooldown_reason(self) -> str | None:
        if self.trigger.force or self.options.cooldown_seconds <= 0:
            return None
        last = self.ports.history.last(self.model_name)
        if last is None:
            return None
        ends = last.cooldown_ends(self.options.cooldown_seconds)
        if self.ports.clock() >= ends:
            return None
        return (
            f"cooldown: the last retrain started at {last.started_at.isoformat()} ({last.outcome}); "
            f"the next may start after {ends.isoformat()} (an operator can force one)"
        )

    def locked(self, lease: Lease) -> RetrainResult:
        """Everything done while holding the lock; any failure is recorded, never raised."""
        # A run that finished between our first cooldown check and taking the lock has recorded itself by now.
        waiting = self.cooldown_reason()
        if waiting:
            return self.skip(waiting)
        rollout, _ = self.ports.rollouts.load(self.model_name)
        if rollout.active:
            return self.skip(f"a rollout of v{rollout.challenger_version} is {rollout.status}; retrain after it ends")
        result = self.result
        previous = self.ports.history.last(self.model_name)
        self.evidence = previous.evidence if previous is not None else None
        record = RetrainRun(
            model_name=self.model_name,
            run_id=lease.owner,
            trigger=result.trigger,
            started_at=self.ports.clock(),
            evidence=self.evidence,
        )
        self.ports.history.record(record)
        result.started = True
        self.progress(f"retrain of {self.model_name} started ({result.trigger})")
        try:
            self.candidate(lease)
        except Exception as exc:  # noqa: BLE001 - a failed retrain is recorded and leaves the champion serving
            result.status, result.error = "failed", exc
            self.note(f"retrain failed: {describe_failure(exc)}")
        finished = record.model_copy(
            update={
                "finished_at": self.ports.clock(),
                "outcome": result.status,
                "champion_version": result.champion_version,
                "candidate_version": result.candidate_version,
                "reasons": result.reasons,
                "evidence": self.evidence,
            }
        )
        try:
            self.ports.history.record(finished)
        except MlopsError as exc:
            # The record written at the start still holds the cooldown; only the outcome is missing.
            self.note(f"the outcome could not be recorded: {exc.message}")
        return result

    def candidate(self, lease: Lease) -> None:
        """Train, measure and judge a candidate; register and hand it over if it passes."""
        ports, options, result = self.ports, self.options, self.result
        champion_version = ports.registry.resolve(self.model_name, "champion")
        result.champion_version = champion_version
        champion = ports.registry.get_card(self.model_name, champion_version)
        now = ports.clock()
        window_start = now - timedelta(days=options.capture_days)
        data = load_training_data(ports, champion, window_start, now, self.trigger.shift_since)
        result.training_rows = data.counts()
        self.progress(
            f"training data: {data.base_rows} base rows + {data.captured_rows} captured rows with outcomes "
            f"({data.duplicate_rows} duplicates dropped, {data.unusable_rows} unusable)"
        )
        if data.captured_rows < options.min_captured_rows and self.trigger.kind != "operator":
            # Without new labelled rows the candidate would only relearn the champion's data.
            self.skip(
                f"only {data.captured_rows} captured rows with outcomes in the last {options.capture_days:g} days "
                f"(at least {options.min_captured_rows} needed); an operator can still retrain on the base dataset"
            )
            return
        stale = self.no_new_evidence(data)
        if stale is not None:
            self.skip(stale)
            return
        self.evidence = RetrainEvidence(
            captured_rows=data.captured_rows,
            captured_rows_sha256=data.captured_ids_sha256,
            drift_psi=dict(self.trigger.drift_psi),
        )
        train_part, holdout = holdout_split(
            data.dataset, options.validation_fraction, options.random_state, champion.task
        )
        spec = TrainingSpec(
            task=champion.task,
            target=champion.target,
            categorical=sorted(champion_categorical(champion)),
            estimator=champion.estimator,
            validation_fraction=options.validation_fraction,
            random_state=options.random_state,
        )
        self.progress(f"training {spec.estimator.kind} on {train_part.n_rows} rows; {holdout.n_rows} rows held out")
        trained = train(train_part, spec)
        traffic = data.traffic
        if self.trigger.kind == "drift" and traffic is not None and traffic.n_rows >= MIN_TRAFFIC_BASELINE_ROWS:
            trained.baseline = traffic_baseline(trained, traffic, spec)
            self.progress(
                f"drift baseline from the {traffic.n_rows} captured rows of the window (the traffic this"
                " candidate would serve), not the training mix: a shift it was trained for is not drift"
            )
        try:
            packaged = package_model(trained, champion.task)
        except GraphFidelityError as exc:
            self.reject(lease, graph_rejection(exc), champion_version)
            return
        self.progress(
            f"ONNX graph checked: worst difference {packaged.serving_graph.fidelity.max_scaled_difference:.2g}"
        )
        measured = measure_candidate(trained, packaged, holdout, champion, ports.registry)
        decision = judge(measured, champion, trained, options.policy)
        decision.checks["serving_graph"] = {
            "max_scaled_difference": packaged.serving_graph.fidelity.max_scaled_difference,
            "tolerance": packaged.serving_graph.fidelity.tolerance,
            "passed": True,
        }
        result.metrics, result.gates = measured.as_metrics(), decision.checks
        self.progress("gates passed" if decision.passed else "gates failed: " + "; ".join(decision.reasons))
        if not decision.passed:
            self.reject(lease, decision, champion_version)
            return
        if not ports.lock.holds(lease):
            raise ConcurrentUpdateError("the retrain lock expired before registering; nothing was registered")
        card = ports.registry.register(
            self.model_name, packaged.files, self.card_builder(champion, trained, packaged, data, measured)
        )
        result.status, result.candidate_version = "registered", card.version
        self.progress(f"registered v{card.version} (parent v{champion_version})")
        self.hand_over(card, champion_version)

    def reject(self, lease: Lease, decision: GateDecision, champion_version: int) -> None:
        """Record a rejected candidate; the champion keeps serving."""
        result = self.result
        result.status, result.reasons, result.gates = "rejected", list(decision.reasons), decision.checks
        self.progress("gates failed: " + "; ".join(decision.reasons))
        result.rejection_key = self.ports.history.record_rejection(
            self.model_name, lease.owner, self.ports.clock(), self.rejection_document(decision)
        )
        self.progress(f"rejection recorded at {result.rejection_key}; v{champion_version} keeps serving")

    def card_builder(
        self,
        champion: ModelCard,
        trained: TrainedModel,
        packaged: PackagedModel,
        data: TrainingData,
        measured: Measurements,
    ) -> Callable[[int], ModelCard]:
        rows = data.dataset.n_rows
        scored = "n/a" if measured.champion_metric is None else f"{measured.champion_metric:.4g}"
        description = (
            f"retrained from v{champion.version} on {self.trigger.describe()}: {data.base_rows} base rows + "
            f"{data.captured_rows} captured rows with outcomes from the last {self.options.capture_days:g} days; "
            f"metrics are on {measured.holdout_rows} held-out rows, where the champion's "
            f"{measured.metric_name} was {scored}"
        )
        facts = CardFacts(
            name=self.model_name,
            task=champion.task,
            target=champion.target,
            estimator=champion.estimator,
            training_data=TrainingDataRef(
                uri=champion.training_data.uri,
                sha256=data.base_sha256,
                rows=rows,
                target=champion.target,
                train_rows=trained.train_rows,
                validation_rows=rows - trained.train_rows,
                captured=None
                if data.window is None
                else CapturedRowsRef(
                    rows=data.captured_rows,
                    window_start=data.window[0],
                    window_end=data.window[1],
                    row_ids_sha256=data.captured_ids_sha256,
                ),
            ),
            metrics=measured.candidate,
            primary_metric=measured.metric_name,
            parent_version=champion.version,
            description=description,
        )
        return card_builder(packaged, trained, facts, self.ports.clock)

    def hand_over(self, card: ModelCard, champion_version: int) -> None:
        """Make the registered candidate the challenger, start its rollout, announce it."""
        ports, result, version = self.ports, self.result, card.version
        reason = f"v{version} passed the retrain gates against v{champion_version} ({result.trigger})"
        try:
            ports.registry.set_aliases(
                self.model_name, {"challenger": version}, expect={"champion": champion_version}, reason=reason
            )
        except ConcurrentUpdateError:
            self.note(f"the champion changed during the retrain; v{version} is registered but not made challenger")
            return
        self.progress(f"v{version} is now challenger")
        if not self.options.auto_deploy:
            self.note(f"auto-deploy is off: v{version} waits as challenger for `mlops promote`")
        else:
            try:
                result.rollout_requested = ports.rollouts.request(self.model_name, version, champion_version, reason)
            except ConcurrentUpdateError:
                result.rollout_requested = False
            if result.rollout_requested:
                self.progress(f"rollout of v{version} requested")
            else:
                self.note(f"a rollout is already under way; v{version} waits as challenger")
        if ports.publisher is None:
            return
        detail = {
            "model_name": self.model_name,
            "version": version,
            "champion_version": champion_version,
            "trigger": result.trigger,
            "primary_metric": card.primary_metric,
            "metrics": result.metrics,
            "rollout_requested": result.rollout_requested,
        }
        try:
            event_id = ports.publisher.publish(CANDIDATE_REGISTERED, detail)
            result.events.append({"detail_type": CANDIDATE_REGISTERED, "detail": detail, "event_id": event_id})
        except MlopsError as exc:
            self.note(f"{CANDIDATE_REGISTERED} was not published: {exc.message}")

    def rejection_document(self, decision: GateDecision) -> dict[str, Any]:
        result = self.result
        return {
            "model_name": result.model_name,
            "trigger": result.trigger,
            "champion_version": result.champion_version,
            "rejected_at": self.ports.clock().isoformat(),
            "reasons": decision.reasons,
            "gates": decision.checks,
            "metrics": result.metrics,
            "training_rows": result.training_rows,
        }


# -- training data ------------------------------------------------------------------------------
@dataclass
class TrainingData:
    """The base dataset joined with labelled captured rows, in the champion's columns."""

    dataset: Dataset
    base_sha256: str
    base_rows: int
    captured_rows: int
    duplicate_rows: int
    unusable_rows: int
    skipped: SkippedRecords = field(default_factory=SkippedRecords)
    captured_ids_sha256: str = ""
    window: tuple[datetime, datetime] | None = None
    traffic: Dataset | None = None  # every captured row of the window (bounded), for a traffic baseline

    def counts(self) -> dict[str, int]:
        corrupt = self.skipped.as_dict()
        return {
            "total": self.dataset.n_rows,
            "base": self.base_rows,
            "captured": self.captured_rows,
            "duplicates_dropped": self.duplicate_rows,
            "unusable_dropped": self.unusable_rows,
            "corrupt_capture_records_skipped": corrupt["capture"],
            "corrupt_outcome_records_skipped": corrupt["outcomes"],
        }


def champion_categorical(card: ModelCard) -> set[str]:
    return {f.name for f in card.feature_schema.features if f.kind == "categorical"}


def load_training_data(
    ports: RetrainPorts, champion: ModelCard, start: datetime, end: datetime, shift_since: datetime | None = None
) -> TrainingData:
    """The champion's base dataset plus the captured rows of ``[start, end]`` that have outcomes.

    A row id (``<request_id>-<i>``) counts once however often it was captured; its outcome is the
    latest recorded. Only outcomes received since ``start`` are read (``S3OutcomeStore.read_since``):
    a row's label comes after it was served. Captured rows whose values or label do not fit the
    champion's schema or classes are dropped and counted; corrupt capture or outcome records are
    skipped and counted.

    Raises:
        TrainingError: the base dataset is missing, unreadable, not the bytes the champion's card
            records (its SHA-256), or lacks one of the champion's columns.
    """
    # The exact bytes the champion learned from, or a refusal: a replaced object never trains silently.
    text, base_sha = ports.datasets.read(champion.training_data.uri, expected_sha256=champion.training_data.sha256)
    base = parse_csv(text, champion.target, champion_categorical(champion), regression=champion.task == "regression")
    specs = champion.feature_schema.features
    missing = [f.name for f in specs if f.name not in base.columns]
    if missing:
        raise TrainingError(f"base dataset {champion.training_data.uri} lacks the champion's columns {missing}")
    skipped = SkippedRecords()
    labels = ports.outcomes.read_since(champion.name, start, skipped=skipped)
    columns: dict[str, list[Any]] = {f.name: [] for f in specs}
    targets: list[Any] = []
    seen: set[str] = set()
    used: list[str] = []
    duplicates = unusable = 0
    traffic: dict[str, list[Any]] = {f.name: [] for f in specs}  # the window's rows since the shift began
    traffic_rows = 0
    since = shift_since.timestamp() if shift_since is not None else 0.0
    for request in ports.capture.iter_requests(champion.name, start, end, skipped=skipped):
        for_baseline = request.timestamp >= since
        for i, row_id in enumerate(request.row_ids):
            in_baseline = for_baseline and traffic_rows < MAX_TRAFFIC_BASELINE_ROWS
            if not in_baseline and row_id not in labels:
                continue
            row = _captured_row(request, i, specs)  # once, for the baseline and the training rows alike
            if in_baseline and row is not None:
                for spec, value in zip(specs, row, strict=True):
                    traffic[spec.name].append(value)
                traffic_rows += 1
            if row_id not in labels:
                continue
            if row_id in seen:
                duplicates += 1
                continue
            seen.add(row_id)
            label = _label(labels[row_id], champion)
            if row is None or label is None:
                unusable += 1
                continue
            for spec, value in zip(specs, row, strict=True):
                columns[spec.name].append(value)
            targets.append(label)
            used.append(row_id)
    merged = {
        f.name: np.concatenate([base.columns[f.name], np.array(columns[f.name], dtype=base.columns[f.name].dtype)])
        for f in specs
    }
    target = np.concatenate([base.target, np.array(targets, dtype=base.target.dtype)])
    dataset = Dataset(columns=merged, target_name=champion.target, target=target, categorical=base.categorical)
    if skipped.total:
        logger.warning("retrain: corrupt records skipped", extra={"skipped": skipped.examples})
    window_traffic = Dataset(
        columns={f.name: np.array(traffic[f.name], dtype=base.columns[f.name].dtype) for f in specs},
        target_name=champion.target,
        target=np.zeros(traffic_rows),
        categorical=base.categorical,
    )
    return TrainingData(
        dataset,
        base_sha,
        base.n_rows,
        len(targets),
        duplicates,
        unusable,
        skipped,
        row_ids_digest(used),
        (start, end),
        window_traffic,
    )


# A drift-triggered candidate's baseline comes from the window's traffic when it has at least this many rows.
MIN_TRAFFIC_BASELINE_ROWS = 200
MAX_TRAFFIC_BASELINE_ROWS = 50_000


def traffic_baseline(trained: TrainedModel, traffic: Dataset, spec: TrainingSpec) -> DriftBaseline:
    """The drift baseline of ``traffic`` (captured rows, labelled or not) and the candidate's answers to it."""
    names = trained.schema.names
    classification = spec.task in CLASSIFICATION_TASKS
    baseline = compute_baseline(
        traffic,
        trained.schema,
        valid_predictions=model_outputs(trained.model, traffic.matrix(names), classification),
        classes=trained.classes,
        task=spec.task,
        sample_size=spec.reference_sample_size,
        seed=spec.random_state,
    )
    return baseline.model_copy(update={"source": "traffic", "traffic_rows": traffic.n_rows})


def row_ids_digest(row_ids: list[str]) -> str:
    """SHA-256 of ``row_ids`` sorted, one per line: which captured rows a retrain used, in 64 characters."""
    return hashlib.sha256("".join(f"{row_id}\n" for row_id in sorted(row_ids)).encode()).hexdigest()


def _captured_row(request: CapturedRequest, i: int, specs: tuple[FeatureSpec, ...]) -> list[Any] | None:
    row: list[Any] = []
    for spec in specs:
        values = request.features.get(spec.name)
        if values is None or i >= len(values):
            return None
        value = values[i]
        if spec.kind == "categorical":
            if type(value) is not str or not value:
                return None
        elif spec.nullable and (value is None or (type(value) is float and math.isnan(value))):
            value = math.nan  # missing, as in training: the pipeline imputes it
        elif type(value) not in (int, float) or not math.isfinite(value):
            return None
        row.append(value)
    return row


def _label(actual: Any, card: ModelCard) -> Any:
    if card.task == "regression":
        return float(actual) if type(actual) in (int, float) and math.isfinite(actual) else None
    known = any(type(actual) is type(c) and actual == c for c in card.classes or [])
    return actual if known else None


def content_groups(dataset: Dataset) -> np.ndarray:
    """A group id per row: rows with the same feature values share one (a replayed request, say)."""
    keys: dict[tuple[Any, ...], int] = {}
    names = dataset.feature_names
    columns = [dataset.columns[name].tolist() for name in names]
    return np.array([keys.setdefault(row, len(keys)) for row in zip(*columns, strict=True)], dtype=np.int64)


def holdout_split(dataset: Dataset, fraction: float, seed: int, task: str) -> tuple[Dataset, Dataset]:
    """Split ``dataset`` into rows to train on and rows held out (stratified by class when possible).

    The split is by content: all rows with the same feature values land on the same side, so a
    row captured again under another request id (or already in the base data) never scores the
    candidate on what it trained on.
    """
    groups = content_groups(dataset)
    first = np.unique(groups, return_index=True)[1]  # each group's first row, in group-id order
    stratify = None
    if task in CLASSIFICATION_TASKS:
        labels = dataset.target[first]
        _, counts = np.unique(labels, return_counts=True)
        stratify = labels if counts.min() >= 2 else None
    try:
        _, hold_groups = train_test_split(
            np.arange(first.size), test_size=fraction, random_state=seed, stratify=stratify
        )
    except ValueError as exc:
        raise TrainingError(f"cannot hold out {fraction:.0%} of {first.size} distinct rows: {exc}") from exc
    held = np.isin(groups, hold_groups)
    return dataset.take(np.flatnonzero(~held)), dataset.take(np.flatnonzero(held))


# -- measuring and judging ----------------------------------------------------------------------
@dataclass
class Measurements:
    """Candidate and champion on the same held-out rows, plus the candidate's latency and size."""

    metric_name: str
    candidate: dict[str, float]
    champion: dict[str, float] | None
    champion_note: str
    latency_ms_1row: float
    artifact_bytes: int
    outputs_finite: bool
    holdout_rows: int

    @property
    def candidate_metric(self) -> float:
        return self.candidate.get(self.metric_name, math.nan)

    @property
    def champion_metric(self) -> float | None:
        return None if self.champion is None else self.champion.get(self.metric_name)

    def as_metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "primary_metric": self.metric_name,
            "lower_is_better": self.metric_name in LOWER_IS_BETTER,
            "candidate": self.candidate,
            "champion": self.champion,
            "latency_ms_1row": self.latency_ms_1row,
            "artifact_bytes": self.artifact_bytes,
            "holdout_rows": self.holdout_rows,
        }
        if self.champion_note:
            out["champion_note"] = self.champion_note
        return out


def _outputs(model: Any, X: np.ndarray, task: str) -> np.ndarray:
    return np.asarray(model.predict_proba(X) if task in CLASSIFICATION_TASKS else model.predict(X), dtype=np.float64)


def one_row_latency_ms(graph: ServingGraph, columns: dict[str, np.ndarray], calls: int = LATENCY_CALLS) -> float:
    """Median wall time of ``calls`` 1-row answers of the serving graph (after one warm-up), in milliseconds."""
    row = {name: col[:1] for name, col in columns.items()}
    graph.run(None, row)
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        graph.run(None, row)
        times.append((time.perf_counter() - started) * 1000.0)
    return float(statistics.median(times))


def graph_rejection(exc: GraphFidelityError) -> GateDecision:
    """A candidate whose ONNX graph does not reproduce its pipeline, as a failed gate."""
    return GateDecision(
        passed=False,
        reasons=[exc.message],
        checks={"serving_graph": {"passed": False, "reason": exc.message}},
    )


def measure_candidate(
    trained: TrainedModel, packaged: PackagedModel, holdout: Dataset, champion: ModelCard, registry: S3ModelRegistry
) -> Measurements:
    """Score candidate and champion on ``holdout``; time the candidate's serving graph on one row.

    The champion is scored with its skops pipeline (allow-listed types only); a champion that
    still has a pickle is not opened, and the other gates decide.
    """
    task = champion.task
    X = holdout.matrix(trained.schema.names)
    candidate_metrics = evaluate(trained.model, X, holdout.target, task)
    champion_metrics: dict[str, float] | None = None
    note = ""
    try:
        pipeline = load_pipeline(registry.read_artifact(champion, "pipeline"), champion)
        champion_metrics = evaluate(pipeline, holdout.matrix(champion.feature_schema.names), holdout.target, task)
    except (MlopsError, ValueError) as exc:
        # A champion that cannot be loaded or scored here cannot be served here either; the other gates decide.
        note = f"the champion could not be scored: {exc.message if isinstance(exc, MlopsError) else exc}"
    graph = ServingGraph(packaged.graph, trained.schema, packaged.serving_graph.output)
    columns = {name: holdout.columns[name] for name in trained.schema.names}
    return Measurements(
        metric_name=PRIMARY_METRIC[task],
        candidate=candidate_metrics,
        champion=champion_metrics,
        champion_note=note,
        latency_ms_1row=one_row_latency_ms(graph, columns),
        artifact_bytes=packaged.serving_bytes,
        outputs_finite=bool(np.isfinite(graph.run(None, columns)).all()),
        holdout_rows=holdout.n_rows,
    )


def judge(measured: Measurements, champion: ModelCard, trained: TrainedModel, policy: GatePolicy) -> GateDecision:
    """Apply the gates to the measurements."""
    compatible, detail = compare_schemas(trained.schema, champion.feature_schema)
    return evaluate_gates(
        candidate_metric=measured.candidate_metric,
        champion_metric=measured.champion_metric,
        metric_name=measured.metric_name,
        lower_is_better=measured.metric_name in LOWER_IS_BETTER,
        latency_ms_1row=measured.latency_ms_1row,
        artifact_bytes=measured.artifact_bytes,
        schema_compatible=compatible,
        outputs_finite=measured.outputs_finite,
        policy=policy,
        schema_detail=detail,
    )
