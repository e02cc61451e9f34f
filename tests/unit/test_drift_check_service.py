"""The drift-check service with hand-written fakes for its ports: verdicts, events, metrics, the outcome join."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from functions.adapters.capture_reader import CapturedRequest
from functions.adapters.reports import ReportLocation, render_html
from functions.domain.card import ModelCard
from functions.domain.drift import DriftCheckReport, DriftPolicy
from functions.domain.drift.hourly import hour_of
from functions.errors import ModelNotFoundError, StorageError
from functions.services.drift_check import (
    MetricPoint,
    Window,
    check_drift,
    metric_points,
    outcomes_by_request,
    prefetched,
)
from tests.conftest import read_dataset

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- fakes


@dataclass
class FakeRegistry:
    cards: dict[int, ModelCard]
    aliases: dict[str, int]

    def resolve(self, name: str, alias: str) -> int:
        if alias not in self.aliases:
            raise ModelNotFoundError(name, alias=alias)
        return self.aliases[alias]

    def get_card(self, name: str, version: int) -> ModelCard:
        return self.cards[version]


@dataclass
class FakeCaptures:
    requests: list[CapturedRequest]
    fail_after: int | None = None

    """Each request is a capture object of its own, keyed by its index, in its timestamp's hour."""

    def keys_by_hour(self, model_name: str, start: datetime, end: datetime) -> dict[datetime, list[str]]:
        grouped: dict[datetime, list[str]] = {}
        for i, request in enumerate(self.requests):
            hour = hour_of(datetime.fromtimestamp(request.timestamp, UTC))
            if hour_of(start) <= hour <= end:
                grouped.setdefault(hour, []).append(str(i))
        return dict(sorted(grouped.items()))

    def read_keys(
        self, keys: Any, start: datetime | None = None, end: datetime | None = None, *, skipped: Any = None
    ) -> Iterator[CapturedRequest]:
        for key in keys:
            i = int(key)
            if self.fail_after is not None and i == self.fail_after:
                raise StorageError("capture object is not valid gzip")
            request = self.requests[i]
            if (start is None or start.timestamp() <= request.timestamp) and (
                end is None or request.timestamp <= end.timestamp()
            ):
                yield request


@dataclass
class FakeOutcomes:
    outcomes: dict[str, Any] = field(default_factory=dict)

    def read_since(self, model_name: str, since: datetime, *, skipped: Any = None) -> dict[str, Any]:
        return dict(self.outcomes)


@dataclass
class FakeBus:
    published: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def publish(self, detail_type: str, detail: dict[str, Any]) -> str:
        self.published.append((detail_type, detail))
        return f"event-{len(self.published)}"


@dataclass
class FakeReports:
    saved: list[DriftCheckReport] = field(default_factory=list)

    def save(self, report: DriftCheckReport) -> ReportLocation:
        self.saved.append(report)
        render_html(report)  # every report must render
        stem = f"reports/drift/{report.model_name}/{len(self.saved)}"
        return ReportLocation(bucket="data", json_key=f"{stem}.json", html_key=f"{stem}.html")

    def last_calm(self, model_name: str, before: datetime) -> datetime | None:
        calm = [r.window.end for r in self.saved if r.verdict == "NO_DRIFT" and r.window.end < before]
        return max(calm, default=None)


@dataclass
class FakeMetrics:
    emitted: list[tuple[MetricPoint, dict[str, str]]] = field(default_factory=list)

    def emit(self, points: Sequence[MetricPoint], dimensions: Mapping[str, str]) -> None:
        self.emitted += [(p, dict(dimensions)) for p in points]

    def value(self, name: str, **dimensions: str) -> float | None:
        found = [p.value for p, _ in self.emitted if p.name == name and dict(p.dimensions) == dimensions]
        return found[-1] if found else None


@dataclass
class Ports:
    registry: FakeRegistry
    captures: FakeCaptures
    outcomes: FakeOutcomes = field(default_factory=FakeOutcomes)
    publisher: FakeBus = field(default_factory=FakeBus)
    reports: FakeReports = field(default_factory=FakeReports)
    metrics: FakeMetrics = field(default_factory=FakeMetrics)

    def check(self, **options: Any) -> Any:
        kwargs: dict[str, Any] = {"model_name": "m", "policy": DriftPolicy(), "now": NOW, **options}
        return check_drift(
            registry=self.registry,
            captures=self.captures,
            outcomes=self.outcomes,
            publisher=self.publisher,
            reports=self.reports,
            metrics=self.metrics,
            **kwargs,
        )


def _plain(value: Any) -> Any:
    """A JSON-shaped value (as outcomes are stored): numpy scalars become Python ones."""
    return value.item() if isinstance(value, np.generic) else value


def captured(card: ModelCard, trained_model: Any, data: Any, n: int, *, seed: int, version: int = 1) -> Any:
    """Requests of 20 rows drawn from ``data``, served by ``trained_model``, with their true labels by row id."""
    rng = np.random.default_rng(seed)
    names = card.feature_schema.names
    requests, truth = [], {}
    for k, start in enumerate(range(0, n, 20)):
        pick = rng.integers(0, data.n_rows, size=min(20, n - start))
        columns = {name: data.columns[name][pick] for name in names}
        X = np.empty((len(pick), len(names)), dtype=object)
        for j, name in enumerate(names):
            X[:, j] = columns[name]
        if not any(f.kind == "categorical" for f in card.feature_schema.features):
            X = X.astype(np.float64)
        if card.is_classifier:
            proba = trained_model.predict_proba(X)
            predictions = np.asarray(card.classes, dtype=object)[proba.argmax(axis=1)].tolist()
            probabilities: list[list[float]] | None = proba.tolist()
        else:
            predictions, probabilities = trained_model.predict(X).tolist(), None
        rid = f"r-{seed}-{k}"
        requests.append(
            CapturedRequest(
                request_id=rid,
                timestamp=(NOW - timedelta(hours=1)).timestamp(),
                model_version=version,
                n_rows=len(pick),
                features={name: values.tolist() for name, values in columns.items()},
                predictions=predictions,
                probabilities=probabilities,
            )
        )
        truth.update({f"{rid}-{i}": _plain(data.target[p]) for i, p in enumerate(pick)})
    return requests, truth


@pytest.fixture
def ports(make_card: Any, trained: Any) -> Any:
    def build(name: str, n: int, *, seed: int = 1, **card_changes: Any) -> tuple[Ports, dict[str, Any]]:
        card, _ = make_card(name, **card_changes)
        requests, truth = captured(card, trained[name].model, read_dataset(name), n, seed=seed)
        return Ports(FakeRegistry({1: card}, {"champion": 1}), FakeCaptures(requests)), truth

    return build


# --------------------------------------------------------------------------- verdicts, events, metrics


def test_no_drift_publishes_nothing_and_measures_every_feature(ports: Any) -> None:
    p, _ = ports("breast_cancer", 400)

    result = p.check()

    assert result.verdict == "NO_DRIFT"
    assert p.publisher.published == []
    assert p.metrics.value("DriftVerdict") == 0
    assert p.metrics.value("RowsChecked") == 400
    assert p.metrics.value("DriftedFeatures") == 0
    assert len([m for m, _ in p.metrics.emitted if m.name == "FeaturePSI"]) == 30
    assert all(d == {"model_name": "m", "model_version": "1"} for _, d in p.metrics.emitted)
    assert result.as_dict()["report_html"] == "reports/drift/m/1.html"


def test_insufficient_data_is_measured_and_reported_but_never_an_event(ports: Any) -> None:
    p, truth = ports("breast_cancer", 120)
    p.outcomes.outcomes = {k: 1 - v for k, v in truth.items()}  # even terrible outcomes say nothing on 120 rows

    result = p.check()

    assert result.verdict == "INSUFFICIENT_DATA"
    assert p.publisher.published == []
    assert p.metrics.value("DriftVerdict") == -1
    assert p.metrics.value("DriftedFeatures") is None
    assert result.report.performance is not None
    assert result.report.performance.status == "INSUFFICIENT_DATA"
    assert p.reports.saved[0].verdict == "INSUFFICIENT_DATA"


def test_rows_of_other_versions_do_not_count(ports: Any, make_card: Any, trained: Any) -> None:
    p, _ = ports("breast_cancer", 150)
    card = p.registry.cards[1]
    other, _ = captured(card, trained["breast_cancer"].model, read_dataset("breast_cancer"), 300, seed=2, version=2)
    p.captures.requests += other

    result = p.check()

    assert (result.report.rows_checked, result.report.rows_other_versions) == (150, 300)
    assert result.verdict == "INSUFFICIENT_DATA"


def test_an_explicit_version_overrides_the_alias(ports: Any) -> None:
    p, _ = ports("breast_cancer", 250)
    p.registry.aliases.clear()

    result = p.check(model_version=1)

    assert result.report.alias is None
    assert result.report.rows_checked == 250
    with pytest.raises(ModelNotFoundError):
        p.check()


def test_a_reader_failure_is_raised_not_a_verdict(ports: Any) -> None:
    p, _ = ports("breast_cancer", 400)
    p.captures.fail_after = 7

    with pytest.raises(StorageError):
        p.check()
    assert p.reports.saved == [] and p.publisher.published == []


def test_window_is_respected(ports: Any) -> None:
    p, _ = ports("breast_cancer", 300)

    recent = p.check(window=Window(NOW - timedelta(minutes=30), NOW))
    default = p.check(window_hours=2)

    assert recent.report.rows_checked == 0
    assert default.report.rows_checked == 300
    assert default.report.window.hours == 2


# --------------------------------------------------------------------------- performance through the service


@pytest.mark.parametrize(
    ("name", "metric"),
    [("breast_cancer", "roc_auc"), ("iris", "f1_macro"), ("diabetes", "rmse")],
)
def test_true_outcomes_are_ok_and_corrupted_ones_degrade(ports: Any, name: str, metric: str) -> None:
    p, truth = ports(name, 300)
    p.outcomes.outcomes = truth

    ok = p.check().report.performance
    if name == "diabetes":
        corrupted = {k: v + 150.0 for k, v in truth.items()}
    else:
        classes = p.registry.cards[1].classes
        assert classes is not None
        corrupted = {k: classes[(classes.index(v) + 1) % len(classes)] for k, v in truth.items()}
    p.outcomes.outcomes = corrupted
    bad = p.check()

    assert ok is not None and ok.status == "OK" and ok.metric == metric and ok.labeled_rows == 300
    performance = bad.report.performance
    assert performance is not None and performance.status == "DEGRADED" and performance.metric == metric
    assert [kind for kind, _ in p.publisher.published] == ["ModelPerformanceDegraded"]
    detail = p.publisher.published[0][1]
    assert detail["metric"] == metric
    assert detail["relative_drop"] == pytest.approx(performance.relative_drop)
    assert p.metrics.value("PerformanceDegraded") == 1
    assert p.metrics.value("PerformanceDrop", metric=metric) == pytest.approx(performance.relative_drop)


def test_outcomes_for_rows_outside_the_window_are_not_joined(ports: Any) -> None:
    p, truth = ports("breast_cancer", 300)
    p.outcomes.outcomes = {**truth, "elsewhere-0": 1, "r-1-0-999": 0, "no-index-x": 1}

    performance = p.check().report.performance

    assert performance is not None and performance.labeled_rows == 300


# --------------------------------------------------------------------------- helpers


def test_outcomes_are_grouped_by_request_and_row() -> None:
    grouped = outcomes_by_request({"a-b-c-2": 1, "a-b-c-0": 0, "plain": 1, "x-": 0, "q-10": 3})

    assert grouped == {"a-b-c": [(0, 0), (2, 1)], "q": [(10, 3)]}


def _requests(n: int) -> Iterator[CapturedRequest]:
    for i in range(n):
        yield CapturedRequest(f"r{i}", 0.0, 1, 3, {"x": [1.0, 2.0, 3.0]}, [0, 0, 0], None)


def test_prefetched_keeps_order_and_everything() -> None:
    assert [r.request_id for r in prefetched(_requests(1000), rows=7, depth=2)] == [f"r{i}" for i in range(1000)]


def test_prefetched_raises_the_readers_error_where_iterated() -> None:
    def failing() -> Iterator[CapturedRequest]:
        yield from _requests(5)
        raise StorageError("boom")

    seen = []
    with pytest.raises(StorageError, match="boom"):
        for request in prefetched(failing(), rows=1):
            seen.append(request.request_id)
    assert seen == [f"r{i}" for i in range(5)]


def test_prefetched_stops_the_reader_when_the_caller_stops() -> None:
    produced = []

    def endless() -> Iterator[CapturedRequest]:
        for request in _requests(10**9):
            produced.append(request)
            yield request

    stream = prefetched(endless(), rows=3, depth=2)
    first = [next(stream) for _ in range(4)]
    stream.close()

    assert [r.request_id for r in first] == ["r0", "r1", "r2", "r3"]
    assert not any(t.name == "capture-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) < 100


def test_metric_points_verdict_encoding(ports: Any) -> None:
    p, _ = ports("breast_cancer", 250)
    report = p.check().report

    points = {(m.name, tuple(m.dimensions.items())): m.value for m in metric_points(report)}

    assert points[("DriftVerdict", ())] == 0
    assert ("FeaturePSI", (("feature", "mean_radius"),)) in points
    assert ("FeaturePValue", (("feature", "mean_radius"),)) in points
