"""drift-check: the serving model's captured traffic of a window against its baseline, and outcomes against its metrics.

The serving model is the version the alias (``champion``) points at when the check runs. Only
rows that version served count: rows served by other versions in the same window (a canary,
the version before a promotion) are counted and reported but never judged against this
version's baseline. Each whole hour of the window comes from its hourly aggregate, grown by the
capture objects it does not cover yet (see :mod:`functions.services.drift_hours`); the rest is
streamed one capture object at a time into bounded counts (see
:class:`functions.domain.drift.DriftAccumulator`). What grows with traffic is one hour's rows'
outputs, held while that hour is added to its aggregate or joined with labels.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from functions.adapters.capture_reader import CapturedRequest
from functions.adapters.events import MODEL_DRIFT_DETECTED, MODEL_PERFORMANCE_DEGRADED
from functions.adapters.reports import ReportLocation
from functions.adapters.skipped import SkippedRecords
from functions.domain.card import ModelCard
from functions.domain.drift import (
    DEFAULT_SAMPLE_SIZE,
    DriftAccumulator,
    DriftCheckReport,
    DriftPolicy,
    PerformanceAccumulator,
    Verdict,
    WindowModel,
    row_hashes,
)
from functions.domain.drift.hourly import HOUR, JoinRows, hour_of
from functions.observability import logger
from functions.services.drift_hours import (
    AggregateStore,
    Cards,
    HourCaptures,
    bring_up_to_date,
    model_outputs,
)

# DriftVerdict metric: one number per check, so one alarm (>= 1) catches drift and a second
# (<= -1 for N periods) catches a window that is too thin to judge for too long.
VERDICT_VALUE: dict[str, int] = {"NO_DRIFT": 0, "DRIFT": 1, "INSUFFICIENT_DATA": -1}
SCOPE = "Only rows served by model version {version} count; rows of other versions in the window are ignored."


# --------------------------------------------------------------------------- ports


class CardSource(Protocol):
    """Where the serving version and its card come from (the model registry)."""

    def resolve(self, name: str, alias: str) -> int:
        """The version ``alias`` points at now; raises ``ModelNotFoundError`` when unset."""
        ...

    def get_card(self, name: str, version: int) -> ModelCard:
        """The card of one version; raises ``ModelNotFoundError`` when there is none."""
        ...


CaptureSource = HourCaptures  # captured traffic by hour, streamed (``S3CaptureReader``)


class OutcomeSource(Protocol):
    """Ground truth recorded by log-outcome."""

    def read_since(self, model_name: str, since: datetime, *, skipped: SkippedRecords | None = None) -> dict[str, Any]:
        """The outcomes of ``model_name`` received since ``since`` (less the store's grace for clocks that
        disagree), by row id (``<request_id>-<i>``); corrupt records are skipped and counted in ``skipped``."""
        ...


class EventPublisher(Protocol):
    """The event bus."""

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        """Publish one event, confirmed; returns its id."""
        ...


class ReportStore(Protocol):
    """Where reports go."""

    def save(self, report: DriftCheckReport) -> ReportLocation:
        """Write the JSON and HTML reports, confirmed; raises ``StorageError`` when either failed."""
        ...

    def last_calm(self, model_name: str, before: datetime) -> datetime | None:
        """When the latest check that found no drift ended its window."""
        ...


@dataclass(frozen=True)
class MetricPoint:
    """One metric value; ``dimensions`` are added to the model's name and version."""

    name: str
    value: float
    unit: str = "NoUnit"
    dimensions: Mapping[str, str] = field(default_factory=dict)


class MetricSink(Protocol):
    """CloudWatch metrics (EMF on Lambda)."""

    def emit(self, points: Sequence[MetricPoint], dimensions: Mapping[str, str]) -> None:
        """Emit ``points``, each with ``dimensions`` plus its own."""
        ...


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Window:
    """The capture window checked: ``start <= ts <= end``."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.start >= self.end:
            raise ValueError("window start must be before its end")

    @classmethod
    def last(cls, hours: float, end: datetime) -> Window:
        """The ``hours`` before ``end``, from the top of the hour they begin in.

        Starting on an hour makes every hour of the window whole but the one ``end`` falls in, so a
        check reads one aggregate per hour (see :mod:`functions.services.drift_hours`); the window is
        up to an hour longer than asked, and the report gives its bounds.

        Args:
            hours: the window's length, at least.
            end: its end (timezone-aware).

        Returns:
            The window.
        """
        return cls(start=hour_of(end - timedelta(hours=hours)), end=end)

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600.0


@dataclass(frozen=True)
class PublishedEvent:
    """An event the check published."""

    detail_type: str
    detail: dict[str, Any]
    event_id: str


@dataclass
class DriftCheckResult:
    """What one check did: its report, where the report went, and the events published."""

    report: DriftCheckReport
    location: ReportLocation
    events: list[PublishedEvent]

    @property
    def verdict(self) -> Verdict:
        return self.report.verdict

    @property
    def performance_degraded(self) -> bool:
        return self.report.performance is not None and self.report.performance.degraded

    def as_dict(self) -> dict[str, Any]:
        """The handler's JSON answer (the local runtime reads ``events``, ``verdict``, ``drifted``, ``report_html``)."""
        r = self.report
        return {
            "model_name": r.model_name,
            "model_version": r.model_version,
            "alias": r.alias,
            "verdict": r.verdict,
            "drifted": list(r.drift.drifted),
            "warnings": list(r.drift.warnings),
            "rows_checked": r.rows_checked,
            "rows_other_versions": r.rows_other_versions,
            "records_skipped": dict(r.records_skipped),
            "prediction_psi": r.drift.prediction_psi,
            "prediction_drifted": r.drift.prediction_drifted,
            "performance": None if r.performance is None else r.performance.model_dump(mode="json"),
            "performance_degraded": self.performance_degraded,
            "window": r.window.model_dump(mode="json"),
            "report_bucket": self.location.bucket,
            "report_json": self.location.json_key,
            "report_html": self.location.html_key,
            "events": [{"detail_type": e.detail_type, "detail": e.detail, "event_id": e.event_id} for e in self.events],
        }


# --------------------------------------------------------------------------- the check


@dataclass
class _Scan:
    drift: DriftAccumulator
    performance: PerformanceAccumulator | None
    other_rows: int = 0
    joined: int = 0


def outcomes_by_request(outcomes: Mapping[str, Any]) -> dict[str, list[tuple[int, Any]]]:
    """Outcomes grouped by request: ``{request_id: [(row index, actual), ...]}``, rows in order.

    Row ids are ``<request_id>-<i>`` (request ids may contain '-' themselves); an id of another
    shape cannot name a captured row and is left out.

    Args:
        outcomes: row id to actual value.

    Returns:
        The outcomes of each request, by row index.
    """
    grouped: dict[str, list[tuple[int, Any]]] = {}
    for row_id, actual in outcomes.items():
        request_id, _, index = row_id.rpartition("-")
        if request_id and index.isdigit():
            grouped.setdefault(request_id, []).append((int(index), actual))
    for rows in grouped.values():
        rows.sort(key=lambda pair: pair[0])
    return grouped


def _join(scan: _Scan, request: CapturedRequest, labelled: list[tuple[int, Any]]) -> None:
    assert scan.performance is not None
    hits = [(i, actual) for i, actual in labelled if i < request.n_rows]
    if not hits:
        return
    probabilities = request.probabilities
    scan.performance.add(
        [actual for _, actual in hits],
        [request.predictions[i] for i, _ in hits],
        None if probabilities is None else [probabilities[i] for i, _ in hits],
    )
    scan.joined += len(hits)


_DONE = object()


def prefetched(requests: Iterator[CapturedRequest], rows: int = 1000, depth: int = 8) -> Iterator[CapturedRequest]:
    """``requests``, read ahead on a thread: while one batch is counted, the next objects are fetched and decoded.

    At most ``depth`` batches of about ``rows`` rows wait at a time, so memory stays bounded. An
    error while reading is raised here, where the caller iterates; a caller that stops early
    stops the reader too.

    Args:
        requests: the captured requests, e.g. ``S3CaptureReader.iter_requests(...)``.
        rows: rows per batch handed over.
        depth: batches that may wait.

    Returns:
        The same requests, in the same order.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand(item: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        batch: list[CapturedRequest] = []
        size = 0
        try:
            for request in requests:
                batch.append(request)
                size += request.n_rows
                if size >= rows:
                    if not hand(batch):
                        return
                    batch, size = [], 0
            if batch:
                hand(batch)
            hand(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer and raised there
            hand(exc)

    reader = threading.Thread(target=read, name="capture-prefetch", daemon=True)
    reader.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield from item
    finally:
        stop.set()
        reader.join(timeout=5)


def _whole(hour: datetime, window: Window, now: datetime) -> bool:
    """Whether every row of ``hour``'s partition is in ``window`` (so its aggregate stands for it).

    The hour the check runs in counts as whole when the window ends at or after ``now``: its rows
    so far are all before the window's end.
    """
    if hour < window.start:
        return False
    return hour + HOUR <= window.end or (hour <= now < hour + HOUR and window.end >= now)


def labels_by_row_key(outcomes: Mapping[str, Any]) -> dict[str, Any]:
    """Outcomes keyed as :class:`~functions.domain.drift.hourly.JoinRows` keys rows (row-id hash, 16 hex digits)."""
    ids = list(outcomes)
    return {f"{k:016x}": outcomes[row_id] for k, row_id in zip(row_hashes(ids).tolist(), ids, strict=True)}


def join_rows(performance: PerformanceAccumulator, rows: JoinRows, labels: Mapping[str, Any]) -> int:
    """Add the labelled ones of ``rows`` (labels keyed by :func:`labels_by_row_key`) to ``performance``.

    Args:
        performance: the window's labelled rows.
        rows: one version's outputs in one hour.
        labels: the window's outcomes by row key.

    Returns:
        The rows joined.
    """
    hits = [i for i, key in enumerate(rows.row_keys) if key in labels]
    if not hits:
        return 0
    probabilities = None
    if rows.probabilities is not None:
        kept = [rows.probabilities[i] for i in hits]
        probabilities = [p for p in kept if p is not None]
        if len(probabilities) < len(kept):
            probabilities = None  # a version answers probabilities for every row or for none
    performance.add([labels[rows.row_keys[i]] for i in hits], [rows.predictions[i] for i in hits], probabilities)
    return len(hits)


def _add_request(scan: _Scan, card: ModelCard, request: CapturedRequest, labelled: Mapping[str, Any]) -> None:
    if request.model_version != card.version:
        scan.other_rows += request.n_rows
        return
    scan.drift.add(request.features, model_outputs(card, request), request.n_rows, row_ids=request.row_ids)
    rows = labelled.get(request.request_id)
    if rows:
        _join(scan, request, rows)


def _scan(
    captures: CaptureSource,
    outcomes: Mapping[str, Any],
    card: ModelCard,
    window: Window,
    *,
    now: datetime,
    sample_size: int,
    skipped: SkippedRecords,
    aggregates: AggregateStore | None,
    cards: Cards,
) -> _Scan:
    """Count the window: whole hours from their aggregates (grown by what they miss), the rest from capture."""
    scan = _Scan(
        drift=DriftAccumulator(card.baseline, card.task, sample_size=sample_size),
        performance=PerformanceAccumulator(card.task, card.classes) if outcomes else None,
    )
    labelled = outcomes_by_request(outcomes)
    labels = labels_by_row_key(outcomes) if outcomes else {}
    by_hour = captures.keys_by_hour(card.name, window.start, window.end)
    whole = [hour for hour in by_hour if aggregates is not None and _whole(hour, window, now)]
    stored = aggregates.hours(card.name, whole[0], whole[-1]) if aggregates is not None and whole else set()
    for hour, keys in by_hour.items():
        if aggregates is None or hour not in whole:
            for request in prefetched(captures.read_keys(keys, window.start, window.end, skipped=skipped)):
                _add_request(scan, card, request, labelled)
            continue
        state = bring_up_to_date(
            captures=captures,
            aggregates=aggregates,
            model_name=card.name,
            hour=hour,
            keys=keys,
            stored=hour in stored,
            cards=cards,
            sample_size=sample_size,
            now=now,
            with_rows=bool(labels),
            read=prefetched,
        )
        builder = state.builder
        lo, hi = builder.first_ts, builder.last_ts
        if (lo is not None and lo < window.start.timestamp()) or (hi is not None and hi > window.end.timestamp()):
            # Rows outside the window after all (a flush since the check began, a clock ahead): read the hour.
            for request in prefetched(captures.read_keys(keys, window.start, window.end, skipped=skipped)):
                _add_request(scan, card, request, labelled)
            continue
        rows = builder.rows_by_version()
        scan.other_rows += sum(rows.values()) - rows.get(card.version, 0)
        partial = builder.partial(card.version, card)
        if partial is not None:  # merged hour by hour: one hour's partial in memory at a time
            scan.drift.merge(DriftAccumulator.from_partial(card.baseline, partial))
        skipped.count("capture", builder.base.skipped if builder.base is not None else 0)
        skipped.absorb(builder.skipped)
        if labels:
            assert scan.performance is not None
            scan.joined += join_rows(scan.performance, state.rows(card.version), labels)
    return scan


def _reports_detail(report: DriftCheckReport, location: ReportLocation) -> dict[str, Any]:
    return {
        "model_name": report.model_name,
        "model_version": report.model_version,
        "window": report.window.model_dump(mode="json"),
        "rows_checked": report.rows_checked,
        "report_json": location.json_uri,
        "report_html": location.html_uri,
    }


def drift_event(report: DriftCheckReport, location: ReportLocation) -> dict[str, Any]:
    """The detail of ``ModelDriftDetected``: the drifted features with their scores, and the reports.

    Args:
        report: a check whose verdict is DRIFT.
        location: where its reports were written.

    Returns:
        The event detail.
    """
    by_name = {f.name: f for f in report.drift.features}
    drifted = [
        {
            "name": name,
            "kind": by_name[name].kind,
            "psi": by_name[name].psi,
            "test": by_name[name].test,
            "statistic": by_name[name].statistic,
            "p_value": by_name[name].p_value,
            "adjusted_p_value": by_name[name].adjusted_p_value,
        }
        for name in report.drift.drifted
    ]
    return {
        **_reports_detail(report, location),
        "verdict": report.verdict,
        "drifted": list(report.drift.drifted),
        "drifted_features": drifted,
        "prediction_psi": report.drift.prediction_psi,
        "prediction_drifted": report.drift.prediction_drifted,
        "correction": report.drift.policy.correction,
    }


def performance_event(report: DriftCheckReport, location: ReportLocation) -> dict[str, Any]:
    """The detail of ``ModelPerformanceDegraded``: the metric, its validation and live values, the drop.

    Args:
        report: a check whose performance is degraded.
        location: where its reports were written.

    Returns:
        The event detail.
    """
    performance = report.performance
    assert performance is not None
    return {
        **_reports_detail(report, location),
        "status": performance.status,
        "metric": performance.metric,
        "validation_value": performance.validation_value,
        "live_value": performance.live_value,
        "relative_drop": performance.relative_drop,
        "tolerance": performance.tolerance,
        "labeled_rows": performance.labeled_rows,
    }


def metric_points(report: DriftCheckReport) -> list[MetricPoint]:
    """The check's CloudWatch metrics (model name and version are added as dimensions by the sink).

    ``DriftVerdict`` is 0 for NO_DRIFT, 1 for DRIFT, -1 for INSUFFICIENT_DATA. ``FeaturePSI`` and
    ``FeaturePValue`` (the corrected p-value) carry a ``feature`` dimension; ``PerformanceValue``
    and ``PerformanceDrop`` (relative, positive when worse) a ``metric`` dimension.

    Args:
        report: the check's report.

    Returns:
        The metric values to emit.
    """
    drift = report.drift
    points = [
        MetricPoint("DriftVerdict", VERDICT_VALUE[report.verdict]),
        MetricPoint("RowsChecked", report.rows_checked, "Count"),
        MetricPoint("RecordsSkipped", sum(report.records_skipped.values()), "Count"),
    ]
    if report.verdict != "INSUFFICIENT_DATA":
        points.append(MetricPoint("DriftedFeatures", len(drift.drifted), "Count"))
        if drift.prediction_psi is not None:
            points.append(MetricPoint("PredictionPSI", drift.prediction_psi))
        for feature in drift.features:
            points.append(MetricPoint("FeaturePSI", feature.psi, dimensions={"feature": feature.name}))
            if feature.adjusted_p_value is not None:
                points.append(
                    MetricPoint("FeaturePValue", feature.adjusted_p_value, dimensions={"feature": feature.name})
                )
    performance = report.performance
    if performance is not None:
        points.append(MetricPoint("LabeledRows", performance.labeled_rows, "Count"))
        if performance.live_value is not None:
            points.append(
                MetricPoint("PerformanceValue", performance.live_value, dimensions={"metric": performance.metric})
            )
        if performance.relative_drop is not None:
            points.append(
                MetricPoint("PerformanceDrop", performance.relative_drop, dimensions={"metric": performance.metric})
            )
            points.append(MetricPoint("PerformanceDegraded", int(performance.degraded), "Count"))
    return points


def check_drift(
    *,
    registry: CardSource,
    captures: CaptureSource,
    outcomes: OutcomeSource,
    publisher: EventPublisher,
    reports: ReportStore,
    metrics: MetricSink,
    model_name: str,
    policy: DriftPolicy,
    alias: str = "champion",
    model_version: int | None = None,
    window: Window | None = None,
    window_hours: float = 24.0,
    now: datetime | None = None,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    aggregates: AggregateStore | None = None,
) -> DriftCheckResult:
    """Check the serving model's window for drift and, with outcomes, for lost quality; report and alert.

    Writes the JSON and HTML reports first, then publishes ``ModelDriftDetected`` when the
    verdict is DRIFT and ``ModelPerformanceDegraded`` when the primary metric dropped by more
    than ``policy.performance_tolerance`` (both events name the reports), then emits the
    metrics. Below ``policy.min_rows`` rows the verdict is INSUFFICIENT_DATA: reported, logged
    and measured, but no event is published and nothing is called healthy.

    Args:
        registry: resolves the alias and reads the card (its baseline, metrics, task).
        captures: the captured traffic.
        outcomes: the ground truth, joined on row id; only what was received since the window began is read.
        publisher: the event bus.
        reports: where the reports go.
        metrics: where the metrics go.
        model_name: the model to check.
        policy: drift thresholds, minimum rows and the performance tolerance.
        alias: the alias naming the serving version, used unless ``model_version`` is given.
        model_version: check this version instead of the alias's (an operator's request).
        window: the capture window; the ``window_hours`` before ``now`` when None.
        window_hours: the default window's length.
        now: the time of the check (the report's timestamp); the current time when None.
        sample_size: rows of the window kept for the KS tests (those whose row ids hash lowest, so that
            partial samples merge).
        aggregates: hourly aggregates: each whole hour of the window is read from its aggregate, grown
            by the capture objects it does not cover yet (and saved); None reads every capture object.

    Returns:
        The report, where it was written, and the events published.
    """
    now = now or datetime.now(UTC)
    window = window or Window.last(window_hours, now)
    version = model_version if model_version is not None else registry.resolve(model_name, alias)
    card = registry.get_card(model_name, version)
    skipped = SkippedRecords()
    known = outcomes.read_since(model_name, window.start, skipped=skipped)  # a window's labels come after it began
    scan = _scan(
        captures,
        known,
        card,
        window,
        now=now,
        sample_size=sample_size,
        skipped=skipped,
        aggregates=aggregates,
        cards=Cards(registry, model_name, [card]),
    )
    drift = scan.drift.report(policy)
    performance = None
    if scan.performance is not None and scan.joined:
        performance = scan.performance.result(
            card.metrics, card.primary_metric, tolerance=policy.performance_tolerance, min_rows=policy.min_rows
        )
    insufficient = drift.verdict == "INSUFFICIENT_DATA"
    report = DriftCheckReport(
        model_name=model_name,
        model_version=version,
        alias=None if model_version is not None else alias,
        generated_at=now,
        window=WindowModel(start=window.start, end=window.end, hours=window.hours),
        scope=SCOPE.format(version=version),
        verdict=drift.verdict,
        rows_checked=scan.drift.n_rows,
        rows_other_versions=scan.other_rows,
        drift=drift,
        performance=performance,
        outcomes_joined=scan.joined,
        records_skipped=skipped.as_dict(),
        distributions=[] if insufficient else scan.drift.distributions(),
    )
    location = reports.save(report)
    wanted: list[tuple[str, dict[str, Any]]] = []
    if drift.verdict == "DRIFT":
        detail = drift_event(report, location)
        # The shift began after the last check that found none: a retrain builds the new baseline from the
        # traffic captured since then (all of its window when no check was calm).
        calm = reports.last_calm(model_name, now)
        detail["shift_since"] = None if calm is None else calm.isoformat()
        wanted.append((MODEL_DRIFT_DETECTED, detail))
    if performance is not None and performance.degraded and not insufficient:
        wanted.append((MODEL_PERFORMANCE_DEGRADED, performance_event(report, location)))
    events = [PublishedEvent(kind, detail, publisher.publish(kind, detail)) for kind, detail in wanted]
    metrics.emit(metric_points(report), {"model_name": model_name, "model_version": str(version)})
    summary = {
        "model_name": model_name,
        "model_version": version,
        "verdict": drift.verdict,
        "rows_checked": report.rows_checked,
        "rows_other_versions": report.rows_other_versions,
        "drifted": drift.drifted,
        "performance": None if performance is None else performance.status,
        "report_html": location.html_uri,
        "events": [e.detail_type for e in events],
        "records_skipped": skipped.as_dict(),
    }
    if skipped.total:
        logger.warning("drift check: corrupt records skipped", extra={"skipped": skipped.examples})
    if insufficient:
        logger.warning("drift check: too few rows to judge; no verdict on drift", extra=summary)
    else:
        logger.info("drift check", extra=summary)
    return DriftCheckResult(report=report, location=location, events=events)
