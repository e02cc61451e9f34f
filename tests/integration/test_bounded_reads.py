"""Reads bounded by the window: outcomes from the window's start (less a grace) on, capture listed by range."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from functions.adapters.capture import CaptureRecord, CaptureWriter
from functions.adapters.capture_reader import S3CaptureReader, hour_prefixes
from functions.adapters.datasets import S3DatasetStore
from functions.adapters.locks import S3RetrainHistory, S3RetrainLock
from functions.adapters.outcomes import OUTCOME_GRACE, S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.adapters.s3 import list_keys
from functions.adapters.skipped import SkippedRecords
from functions.bootstrap import AwsClients
from functions.domain.card import ModelCard
from functions.handlers.drift_check import DriftCheckEnvironment, DriftCheckFunction
from functions.services.retrain import RetrainPorts, load_training_data
from functions.settings import DriftCheckSettings
from tests.conftest import CFG, DATA
from tests.events import load_event

NAME = CFG.model_name
NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
# Not on an hour: the first and last hours of the window are partial, as a retrain's are.
WINDOW_END = datetime(2026, 11, 23, 17, 23, 10, tzinfo=UTC)
WINDOW_START = WINDOW_END - timedelta(days=30)


@dataclass
class S3Calls:
    """The S3 operations a client makes while counted, with the key of each GetObject."""

    operations: Counter[str] = field(default_factory=Counter)
    got: list[str] = field(default_factory=list)

    def before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.operations[model.name] += 1

    def before_get(self, params: dict[str, Any], **_: Any) -> None:
        self.got.append(params["Key"])


@pytest.fixture
def s3_calls(aws: Any) -> Iterator[S3Calls]:
    calls = S3Calls()
    aws.meta.events.register("before-call.s3", calls.before_call)
    aws.meta.events.register("before-parameter-build.s3.GetObject", calls.before_get)
    yield calls
    aws.meta.events.unregister("before-call.s3", calls.before_call)
    aws.meta.events.unregister("before-parameter-build.s3.GetObject", calls.before_get)


# --------------------------------------------------------------------------- outcomes


def test_outcomes_received_before_the_window_less_the_grace_are_not_read(aws, s3_calls):
    store = S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix)
    since = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    days_before = since - timedelta(days=3)
    store.put_batch(NAME, [("old-0", 1)], received_at=days_before)
    corrupt = f"{CFG.outcomes_prefix}/{NAME}/dt={since - timedelta(days=2):%Y-%m-%d}/corrupt.jsonl"
    aws.put_object(Bucket=CFG.data_bucket, Key=corrupt, Body=b"garbage\n{not json either")
    store.put_batch(NAME, [("same-day-early-0", 1)], received_at=since - OUTCOME_GRACE - timedelta(minutes=5))
    store.put_batch(NAME, [("in-window-0", 0)], received_at=since + timedelta(hours=2))
    legacy = f"{CFG.outcomes_prefix}/{NAME}/dt=2026-11-23/0legacy.jsonl"  # stored before keys had an hour
    aws.put_object(
        Bucket=CFG.data_bucket,
        Key=legacy,
        Body=b'{"request_id": "legacy-0", "actual": 1, "received_at": "2026-11-23T11:00:00+00:00"}\n',
    )
    s3_calls.got.clear()
    s3_calls.operations.clear()
    skipped = SkippedRecords()

    outcomes = store.read_since(NAME, since, skipped=skipped)
    opened, lists = sorted(s3_calls.got), s3_calls.operations["ListObjectsV2"]

    assert outcomes == {"in-window-0": 0, "legacy-0": 1}
    assert skipped.total == 0  # the corrupt object of an earlier day was never opened
    # Earlier days are not even listed; of the first day, earlier hours are listed but not opened (a key from
    # before hours were in keys is opened, its records filtered).
    day = f"{CFG.outcomes_prefix}/{NAME}/dt=2026-11-23/"
    assert [k.removeprefix(day).split("/")[0] for k in opened] == ["0legacy.jsonl", "hour=12"]
    assert (len(opened), lists) == (2, 1)
    assert len(list_keys(aws, CFG.data_bucket, day)) == 3
    assert store.read_all(NAME, skipped=SkippedRecords()).keys() == {
        "old-0",
        "same-day-early-0",
        "in-window-0",
        "legacy-0",
    }


def test_late_labels_and_labels_inside_the_grace_are_read(aws):
    store = S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix)
    since = datetime(2026, 11, 23, 0, 20, tzinfo=UTC)  # the grace reaches into the day before
    store.put_batch(NAME, [("skewed-0", 1)], received_at=since - OUTCOME_GRACE + timedelta(minutes=1))
    store.put_batch(NAME, [("too-early-0", 1)], received_at=since - OUTCOME_GRACE - timedelta(minutes=1))
    store.put_batch(NAME, [("late-0", 0)], received_at=since + timedelta(days=9))  # long after the window ended
    store.put_batch(NAME, [("late-0", 1)], received_at=since + timedelta(days=10))  # corrected later still

    assert store.read_since(NAME, since) == {"skewed-0": 1, "late-0": 1}
    assert store.read_since(NAME, since, grace=timedelta(0)) == {"late-0": 1}
    assert store.read_since("other-model", since) == {}


def test_a_received_at_that_is_not_a_time_is_counted_when_reading_since(aws):
    since = datetime(2026, 11, 23, 10, tzinfo=UTC)
    key = f"{CFG.outcomes_prefix}/{NAME}/dt=2026-11-23/odd.jsonl"
    body = b'{"request_id": "r-0", "actual": 1, "received_at": "yesterday"}\n'
    aws.put_object(Bucket=CFG.data_bucket, Key=key, Body=body)
    skipped = SkippedRecords()

    assert S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).read_since(NAME, since, skipped=skipped) == {}
    assert skipped.as_dict() == {"capture": 0, "outcomes": 1}


# --------------------------------------------------------------------------- the checks that read them


def serve(aws: Any, champion: ModelCard, served_at: datetime, requests: int = 20) -> list[tuple[str, int]]:
    """Capture ``requests`` 3-row requests of the real data set at ``served_at``; (row id, label) of each row."""
    table = np.genfromtxt(DATA / CFG.demo.file, delimiter=",", names=True)
    names = champion.feature_schema.names
    records, truth = [], []
    for r in range(requests):
        rows = table[3 * r : 3 * r + 3]
        records.append(
            CaptureRecord(
                request_id=f"req-{r}",
                timestamp=served_at.timestamp() + r,
                model_version=champion.version,
                columns={n: rows[n].astype(np.float64) for n in names},
                predictions=rows["target"].astype(np.int64),
                probabilities=None,
                n_rows=3,
            )
        )
        truth += [(f"req-{r}-{i}", int(rows["target"][i])) for i in range(3)]
    CaptureWriter(aws, CFG.data_bucket, CFG.capture_prefix, NAME).write(records)
    return truth


def write_stale_outcomes(aws: Any, truth: list[tuple[str, int]], before: datetime) -> None:
    """Labels of the window's rows (flipped) and a corrupt object, received days before the window began."""
    old = before - timedelta(days=5)
    S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).put_batch(
        NAME, [(rid, 1 - y) for rid, y in truth], received_at=old
    )
    key = f"{CFG.outcomes_prefix}/{NAME}/dt={old - timedelta(days=1):%Y-%m-%d}/corrupt.jsonl"
    aws.put_object(Bucket=CFG.data_bucket, Key=key, Body=b"garbage\n")


def test_drift_check_reads_no_outcome_received_before_its_window(aws, boto_session, champion, function_env):
    events = boto_session.client("events")
    events.create_event_bus(Name=CFG.event_bus_name)
    function_env("drift_check")
    clients = AwsClients(s3=aws, events=events)
    environment = DriftCheckEnvironment(DriftCheckSettings.from_environment(), clients, clock=lambda: NOW)
    window_start = NOW - timedelta(hours=environment.settings.window_hours)
    truth = serve(aws, champion, NOW - timedelta(hours=2))
    write_stale_outcomes(aws, truth, window_start)
    S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).put_batch(
        NAME, truth[:30], received_at=NOW - timedelta(hours=1)
    )

    result = DriftCheckFunction(environment).handle(load_event("schedule"), None)

    assert result["records_skipped"] == {"capture": 0, "outcomes": 0}
    assert result["performance"]["labeled_rows"] == 30  # the stale labels of the other 30 rows are not joined


def test_retrain_reads_no_outcome_received_before_its_window(aws, champion):
    registry = S3ModelRegistry(aws, CFG.registry_bucket)
    ports = RetrainPorts(
        registry=registry,
        datasets=S3DatasetStore(aws, CFG.data_bucket, CFG.datasets_prefix),
        capture=S3CaptureReader(aws, CFG.data_bucket, CFG.capture_prefix),
        outcomes=S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix),
        lock=S3RetrainLock(aws, CFG.registry_bucket, ttl_seconds=900),
        history=S3RetrainHistory(aws, CFG.registry_bucket),
        rollouts=S3RolloutStore(aws, CFG.registry_bucket),
    )
    start = NOW - timedelta(days=1)
    truth = serve(aws, champion, NOW - timedelta(hours=2))
    write_stale_outcomes(aws, truth, start)
    ports.outcomes.put_batch(NAME, truth[:30], received_at=NOW - timedelta(hours=1))

    data = load_training_data(ports, champion, start, NOW)

    assert data.captured_rows == 30
    assert data.skipped.as_dict() == {"capture": 0, "outcomes": 0}


# --------------------------------------------------------------------------- capture


class HourByHourReader(S3CaptureReader):
    """The reader as it was: one listing per hour partition of the window (kept once listed; moto lists slowly)."""

    def __init__(self, s3: Any, bucket: str, prefix: str) -> None:
        super().__init__(s3, bucket, prefix)
        self.listed: dict[tuple[str, datetime, datetime], list[str]] = {}

    def keys(self, model_name: str, start: datetime, end: datetime) -> list[str]:
        if (model_name, start, end) not in self.listed:
            partitions = hour_prefixes(self.prefix, model_name, start, end)
            keys = sorted(k for p in partitions for k in list_keys(self._s3, self.bucket, p))
            self.listed[model_name, start, end] = keys
        return self.listed[model_name, start, end]


def write_capture(aws: Any, model_name: str, start: datetime, end: datetime, per_hour: int) -> None:
    """``per_hour`` one-record objects in every hour from ``start`` to ``end``, as predict's writer writes them."""
    writer = CaptureWriter(aws, CFG.data_bucket, CFG.capture_prefix, model_name)
    columns = {"x": np.array([1.0])}
    hour, n = start, 0
    while hour <= end:
        for k in range(per_hour):
            at = hour + timedelta(minutes=60 * k / per_hour + 1)
            writer.write([CaptureRecord(f"{model_name}-{n}", at.timestamp(), 1, columns, np.array([0]), None, 1)])
            n += 1
        hour += timedelta(hours=1)


def test_a_30_day_window_is_listed_in_a_few_requests_with_the_records_of_listing_each_hour(aws, s3_calls):
    hour = timedelta(hours=1)
    first, last = WINDOW_START.replace(minute=0, second=0) - 2 * hour, WINDOW_END.replace(minute=0, second=0) + 2 * hour
    write_capture(aws, NAME, first, last, per_hour=2)  # more than 1000 keys in the window: several pages
    for edge in (first, last - 3 * hour):  # a model whose name begins with ours, around the window's edges
        write_capture(aws, f"{NAME}-b", edge, edge + 3 * hour, per_hour=1)
    ranged = S3CaptureReader(aws, CFG.data_bucket, CFG.capture_prefix)
    hourly = HourByHourReader(aws, CFG.data_bucket, CFG.capture_prefix)

    listed = {}
    for name, reader in (("ranged", ranged), ("hourly", hourly)):
        s3_calls.operations.clear()
        keys = reader.keys(NAME, WINDOW_START, WINDOW_END)
        listed[name] = (keys, s3_calls.operations["ListObjectsV2"])
    got = [(r.request_id, r.timestamp) for r in ranged.iter_requests(NAME, WINDOW_START, WINDOW_END)]
    before = [(r.request_id, r.timestamp) for r in hourly.iter_requests(NAME, WINDOW_START, WINDOW_END)]

    assert listed["ranged"][0] == listed["hourly"][0]
    assert len(listed["ranged"][0]) == 2 * 721
    assert listed["hourly"][1] == 721  # what it used to cost
    assert listed["ranged"][1] <= 3  # about one request per 1000 keys, far below the target of 100
    assert got == before
    assert len(got) == 2 * 721 - 2  # the partial first and last hours each hold one record outside the window
    assert not [rid for rid, _ in got if rid.startswith(f"{NAME}-b-")]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(NOW + timedelta(minutes=5), NOW + timedelta(minutes=50), 2, id="within-one-hour"),
        pytest.param(NOW - timedelta(hours=3), NOW - timedelta(minutes=50), 6, id="whole-and-partial-hours"),
        pytest.param(NOW + timedelta(days=1), NOW + timedelta(days=2), 0, id="after-the-capture"),
        pytest.param(NOW, NOW - timedelta(hours=1), 0, id="end-before-start"),
    ],
)
def test_short_windows_list_the_same_keys_as_hour_by_hour(aws, start, end, expected):
    write_capture(aws, NAME, NOW - timedelta(hours=4), NOW + timedelta(hours=1), per_hour=2)
    reader = S3CaptureReader(aws, CFG.data_bucket, CFG.capture_prefix)
    partitions = hour_prefixes(CFG.capture_prefix, NAME, start, end)

    keys = reader.keys(NAME, start, end)

    assert keys == sorted(k for p in partitions for k in list_keys(aws, CFG.data_bucket, p))
    assert len(keys) == expected
