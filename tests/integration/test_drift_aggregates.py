"""Hourly drift aggregates against moto: a check that reads them equals one that reads every capture object."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from functions.adapters.aggregates import S3AggregateStore
from functions.adapters.capture import CaptureRecord, CaptureWriter, encode_batch
from functions.adapters.outcomes import S3OutcomeStore
from functions.bootstrap import AwsClients
from functions.domain.card import ModelCard
from functions.domain.drift.hourly import HourRows
from functions.errors import StorageError, ValidationError
from functions.handlers.drift_check import DriftCheckEnvironment, DriftCheckFunction
from functions.services.drift_check import DriftCheckResult, Window, check_drift
from functions.services.drift_hours import Cards, aggregate_recent, fits
from functions.settings import DriftCheckSettings
from tests.conftest import CFG, DATA
from tests.events import load_event
from tests.integration.test_bounded_reads import S3Calls

NAME = CFG.model_name
NOW = datetime(2026, 11, 23, 17, 40, tzinfo=UTC)
AGGREGATED_AT = datetime(2026, 11, 23, 17, 20, tzinfo=UTC)
WINDOW_START = datetime(2026, 11, 22, 17, 0, tzinfo=UTC)  # the top of the hour 24 hours before NOW
TABLE = np.genfromtxt(DATA / CFG.demo.file, delimiter=",", names=True)
# Smaller than most windows here, so merged KS samples really are the bottom-k of the union.
SAMPLE = 64


def records(card: ModelCard, at: datetime, first_row: int, *, requests: int, version: int | None = None) -> list[Any]:
    """``requests`` 2-row requests of the real data set at ``at`` (a second apart), with probabilities."""
    names = card.feature_schema.names
    out = []
    for r in range(requests):
        rows = TABLE[first_row + 2 * r : first_row + 2 * r + 2]
        p = np.clip(rows[names[0]] / 30.0, 0.0, 1.0)
        out.append(
            CaptureRecord(
                request_id=f"req-{at:%d%H%M}-{r}",
                timestamp=at.timestamp() + r,
                model_version=card.version if version is None else version,
                columns={n: rows[n].astype(np.float64) for n in names},
                predictions=(p > 0.5).astype(np.int64),
                probabilities=np.column_stack([1.0 - p, p]),
                n_rows=2,
            )
        )
    return out


class History:
    """Capture of several hours, written as predict's writer writes it, with labels for some rows."""

    def __init__(self, aws: Any, card: ModelCard) -> None:
        self.aws, self.card = aws, card
        self.writer = CaptureWriter(aws, CFG.data_bucket, CFG.capture_prefix, NAME)
        self.labels: list[tuple[str, int]] = []

    def serve(self, at: datetime, first_row: int, requests: int = 20, version: int | None = None) -> None:
        batch = records(self.card, at, first_row, requests=requests, version=version)
        self.writer.write(batch)
        self.labels += [(f"{r.request_id}-0", int(TABLE["target"][first_row + 2 * i])) for i, r in enumerate(batch)]

    def corrupt(self, hour: datetime) -> None:
        """One object that is not gzip and one with a line that is not a capture record."""
        partition = f"{CFG.capture_prefix}/{NAME}/dt={hour:%Y-%m-%d}/hour={hour:%H}/"
        self.aws.put_object(Bucket=CFG.data_bucket, Key=partition + "zz-garbage.json.gz", Body=b"not gzip")
        body = gzip.decompress(encode_batch(records(self.card, hour + timedelta(minutes=1), 300, requests=1)))
        self.aws.put_object(
            Bucket=CFG.data_bucket, Key=partition + "zz-odd-line.json.gz", Body=gzip.compress(body + b'{"n": 1}\n')
        )


@pytest.fixture
def environment(aws: Any, boto_session: Any, function_env: Any) -> DriftCheckEnvironment:
    events = boto_session.client("events")
    events.create_event_bus(Name=CFG.event_bus_name)
    function_env("drift_check")
    clients = AwsClients(s3=aws, events=events)
    return DriftCheckEnvironment(DriftCheckSettings.from_environment(), clients, clock=lambda: NOW)


@pytest.fixture
def capture_gets(aws: Any) -> Iterator[list[str]]:
    """The capture objects read, in order."""
    calls = S3Calls()
    aws.meta.events.register("before-parameter-build.s3.GetObject", calls.before_get)
    yield calls.got
    aws.meta.events.unregister("before-parameter-build.s3.GetObject", calls.before_get)


def check(env: DriftCheckEnvironment, *, aggregates: bool, window: Window | None = None) -> DriftCheckResult:
    return check_drift(
        registry=env.registry,
        captures=env.captures,
        outcomes=env.outcomes,
        publisher=env.publisher,
        reports=env.reports,
        metrics=env.metrics,
        model_name=NAME,
        policy=env.policy,
        window=window,
        now=NOW,
        sample_size=SAMPLE,
        aggregates=env.aggregates if aggregates else None,
    )


def aggregate(env: DriftCheckEnvironment, now: datetime, hours: int) -> dict[str, Any]:
    return aggregate_recent(
        registry=env.registry,
        captures=env.captures,
        aggregates=env.aggregates,
        model_name=NAME,
        now=now,
        sample_size=SAMPLE,
        hours=hours,
    )


def capture_only(keys: list[str]) -> list[str]:
    return [k for k in keys if k.startswith(f"{CFG.capture_prefix}/")]


def same_report(a: DriftCheckResult, b: DriftCheckResult) -> None:
    ra, rb = a.report, b.report
    assert ra.window == rb.window
    assert (ra.verdict, ra.rows_checked, ra.rows_other_versions) == (
        rb.verdict,
        rb.rows_checked,
        rb.rows_other_versions,
    )
    assert ra.records_skipped == rb.records_skipped
    assert ra.drift.model_dump() == rb.drift.model_dump()  # counts and bottom-k samples: exactly equal
    assert [d.model_dump() for d in ra.distributions] == [d.model_dump() for d in rb.distributions]
    assert ra.outcomes_joined == rb.outcomes_joined
    assert (ra.performance is None) == (rb.performance is None)
    if ra.performance is not None and rb.performance is not None:
        # The same labelled rows in another order: sums may differ in the last bit.
        assert ra.performance.live_value == pytest.approx(rb.performance.live_value, rel=1e-12)
        assert ra.performance.labeled_rows == rb.performance.labeled_rows
        assert ra.performance.status == rb.performance.status


def test_a_check_from_aggregates_equals_one_that_reads_every_capture_object(aws, champion, environment, capture_gets):
    history = History(aws, champion)
    history.serve(WINDOW_START - timedelta(minutes=30), 0)  # the hour before the window
    history.serve(WINDOW_START + timedelta(minutes=5), 40)
    history.serve(WINDOW_START + timedelta(hours=6, minutes=10), 80, requests=30)
    history.serve(WINDOW_START + timedelta(hours=6, minutes=50), 140, requests=10, version=champion.version + 7)
    history.serve(WINDOW_START + timedelta(hours=16), 160, requests=40)
    history.corrupt(WINDOW_START + timedelta(hours=16))
    history.serve(NOW - timedelta(minutes=35), 240, requests=15)  # the current hour, before the aggregation
    aggregated = aggregate(environment, AGGREGATED_AT, hours=48)
    assert [h["saved"] for h in aggregated["hours"]] == [True] * 5
    # Written after the aggregation: a late flush into an hour it covered, and the current hour's next object.
    history.serve(WINDOW_START + timedelta(hours=6, minutes=40), 270, requests=5)
    history.serve(NOW - timedelta(minutes=5), 280, requests=12)
    S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).put_batch(
        NAME, history.labels[::3], received_at=NOW - timedelta(hours=1)
    )
    capture_gets.clear()

    merged = check(environment, aggregates=True)
    read = capture_only(capture_gets)
    single = check(environment, aggregates=False)

    # An hour of at most SAMPLE rows keeps its rows' outputs inline; a larger one in a rows object (read for labels).
    store: S3AggregateStore = environment.aggregates
    stored = [store.get(NAME, hour)[0] for hour in sorted(store.hours(NAME, WINDOW_START, NOW))]
    assert {a.rows_object is None for a in stored} == {True, False}
    for saved in stored:
        assert (saved.rows_object is None) == (saved.versions[champion.version].rows <= SAMPLE)

    assert merged.report.window.start == WINDOW_START and merged.report.window.end == NOW
    # Only the two objects written since the aggregation were opened: the late flush and the current hour's.
    assert sorted(k.split("/")[2] + "/" + k.split("/")[3] for k in read) == [
        "dt=2026-11-22/hour=23",
        "dt=2026-11-23/hour=17",
    ]
    same_report(merged, single)
    assert merged.report.rows_checked == 2 * (20 + 30 + 40 + 15 + 5 + 12 + 1)  # the odd-line object's good record too
    assert merged.report.rows_other_versions == 20
    assert merged.report.records_skipped == {"capture": 2, "outcomes": 0}
    # Every third request is labelled; those of the hour before the window (7) and of the other version (3) do not join.
    assert merged.report.performance is not None and merged.report.outcomes_joined == len(history.labels[::3]) - 7 - 3

    capture_gets.clear()
    again = check(environment, aggregates=True)
    assert capture_only(capture_gets) == []  # the first check saved what it added
    same_report(again, single)


def test_an_edge_hour_and_an_hour_of_another_sample_size_are_read_from_capture(
    aws, champion, environment, capture_gets
):
    history = History(aws, champion)
    history.serve(WINDOW_START + timedelta(hours=2, minutes=10), 0, requests=30)
    history.serve(WINDOW_START + timedelta(hours=3, minutes=10), 60, requests=30)
    aggregate(environment, AGGREGATED_AT, hours=48)
    store: S3AggregateStore = environment.aggregates
    odd_hour = WINDOW_START + timedelta(hours=3)
    found, etag = store.get(NAME, odd_hour)
    assert found is not None
    resized = found.model_copy(update={"sample_size": found.sample_size + 1})
    assert store.put(resized, store.get_rows(found), etag)
    # Starting in the middle of an hour: that hour's aggregate holds rows before the window.
    window = Window(WINDOW_START + timedelta(hours=2, minutes=10, seconds=15), NOW)
    capture_gets.clear()

    merged = check(environment, aggregates=True, window=window)

    assert len(capture_only(capture_gets)) == 2
    same_report(merged, check(environment, aggregates=False, window=window))
    assert merged.report.rows_checked == 2 * (30 - 15 + 30)
    assert store.get(NAME, odd_hour)[0].sample_size == resized.sample_size  # not saved over: it is not ours


def test_a_lost_race_is_dropped_and_gone_rows_are_rebuilt(aws, champion, environment, capture_gets):
    history = History(aws, champion)
    hour = WINDOW_START + timedelta(hours=5)
    history.serve(hour + timedelta(minutes=1), 0, requests=10)
    # Rows in an object of their own, as an hour of more rows than the KS sample keeps them.
    store = environment.aggregates = S3AggregateStore(aws, CFG.data_bucket, CFG.drift.aggregates_prefix, inline_rows=0)
    aggregate(environment, AGGREGATED_AT, hours=48)
    first, etag = store.get(NAME, hour)
    history.serve(hour + timedelta(minutes=20), 30, requests=10)
    aggregate(environment, AGGREGATED_AT, hours=48)
    grown, _ = store.get(NAME, hour)
    assert len(grown.capture_keys) == 2 and grown.versions[champion.version].rows == 40

    assert store.put(first, HourRows(), etag) is False  # written over the ETag it read: refused
    assert store.get(NAME, hour)[0] == grown
    assert grown.rows_object is not None and first.rows_object is not None
    assert aws.list_objects_v2(Bucket=CFG.data_bucket, Prefix=first.rows_object)["KeyCount"] == 0  # replaced

    aws.delete_object(Bucket=CFG.data_bucket, Key=grown.rows_object)
    S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).put_batch(
        NAME, history.labels, received_at=NOW - timedelta(hours=1)
    )
    capture_gets.clear()
    merged = check(environment, aggregates=True)
    assert len(capture_only(capture_gets)) == 2  # its rows were gone: the hour was read again and saved whole
    assert merged.report.outcomes_joined == 20
    rebuilt, _ = store.get(NAME, hour)
    assert rebuilt.rows_object is not None and rebuilt.capture_keys == grown.capture_keys
    same_report(merged, check(environment, aggregates=False))


def test_unreadable_unfitting_and_unsaved_aggregates_never_change_the_report(aws, champion, environment):
    history = History(aws, champion)
    unreadable, unfitting = WINDOW_START + timedelta(hours=3), WINDOW_START + timedelta(hours=8)
    history.serve(unreadable + timedelta(minutes=5), 0)
    history.serve(unfitting + timedelta(minutes=5), 40)
    history.serve(NOW - timedelta(minutes=30), 80)
    aggregate(environment, AGGREGATED_AT, hours=48)
    store: S3AggregateStore = environment.aggregates
    aws.put_object(Bucket=CFG.data_bucket, Key=store.key(NAME, unreadable), Body=b'{"format": 2}')
    found, etag = store.get(NAME, unfitting)
    assert found is not None
    entry = found.versions[champion.version]
    assert entry.drift is not None
    # As if made against another baseline (e.g. before a card format change).
    other = entry.model_copy(update={"drift": entry.drift.model_copy(update={"baseline_sha256": "0" * 64})})
    assert store.put(found.model_copy(update={"versions": {champion.version: other}}), store.get_rows(found), etag)
    history.serve(NOW + timedelta(minutes=2), 120, requests=3)  # stamped after the check's time: a clock ahead

    merged = check(environment, aggregates=True)

    same_report(merged, check(environment, aggregates=False))
    assert merged.report.rows_checked == 2 * (20 + 20 + 20)  # not the rows stamped after the window's end
    cards = Cards(environment.registry, NAME)
    for hour in (unreadable, unfitting):  # both were rebuilt and saved over
        repaired, _ = store.get(NAME, hour)
        assert repaired is not None and fits(repaired, cards, SAMPLE)


class FailingWrites(S3AggregateStore):
    """An aggregate store whose writes fail, as S3 might."""

    def put(self, aggregate: Any, rows: Any, etag: str | None) -> bool:
        raise StorageError("writing the aggregate failed: SlowDown")


def test_a_check_whose_aggregates_cannot_be_saved_still_reports(aws, champion, environment):
    history = History(aws, champion)
    history.serve(WINDOW_START + timedelta(hours=1, minutes=5), 0)
    history.serve(NOW - timedelta(minutes=30), 40)
    environment.aggregates = FailingWrites(aws, CFG.data_bucket, CFG.drift.aggregates_prefix)

    merged = check(environment, aggregates=True)

    same_report(merged, check(environment, aggregates=False))
    assert merged.report.rows_checked == 2 * (20 + 20)
    assert environment.aggregates.hours(NAME, WINDOW_START, NOW) == set()  # nothing claims to be saved


def test_the_aggregate_action_fails_when_an_aggregate_cannot_be_saved(aws, champion, environment):
    history = History(aws, champion)
    history.serve(NOW - timedelta(hours=1, minutes=30), 0)
    history.serve(NOW - timedelta(minutes=30), 40)
    environment.aggregates = FailingWrites(aws, CFG.data_bucket, CFG.drift.aggregates_prefix)

    with pytest.raises(StorageError) as raised:  # saving is the step's work: no success is reported
        aggregate(environment, NOW, hours=2)

    message = str(raised.value)
    assert "2 hour(s) not saved" in message
    assert "2026-11-23T16:00:00+00:00 (writing the aggregate failed: SlowDown)" in message
    assert "2026-11-23T17:00:00+00:00" in message
    assert environment.aggregates.hours(NAME, WINDOW_START, NOW) == set()


def test_the_aggregate_action_through_the_handler(aws, champion, environment):
    History(aws, champion).serve(NOW - timedelta(minutes=30), 0)
    function = DriftCheckFunction(environment)

    done = function.handle({"action": "aggregate"}, None)

    assert (done["action"], done["objects_read"]) == ("aggregate", 1)
    assert [(h["hour"], h["rows"], h["saved"]) for h in done["hours"]] == [("2026-11-23T17:00:00+00:00", 40, True)]
    assert function.handle({"action": "aggregate"}, None)["objects_read"] == 0
    with pytest.raises(ValidationError) as raised:
        function.handle({"action": "aggregate", "window_hours": 3}, None)
    assert [e.field for e in raised.value.errors] == ["window_hours"]
    scheduled = function.handle(load_event("schedule"), None)  # the check's own schedule still checks
    assert scheduled["window"]["start"] == "2026-11-22T17:00:00Z"
