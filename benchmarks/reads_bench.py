"""`python -m benchmarks.reads_bench`: the S3 requests a 30-day retrain's and a 24-hour drift-check's reads make.

What is measured: 30 days of capture at 100 objects an hour (72,100 objects of one or two records
each, encoded and keyed by predict's capture writer, ``CaptureWriter.write``) and one outcome batch
an hour (ten labels, received 90 minutes after the hour, so some land on the next day), in moto's
in-process S3. Every request the readers send is counted with botocore event hooks on the client
(``before-call`` per operation, ``before-send`` per HTTP request):

- ``retrain_30d_list_calls``: the LIST requests of a 30-day retrain's capture read (``load_training_data``
  lists the window's keys through ``S3CaptureReader.keys`` before it opens any object). Target <= 100.
  Beside it, the LISTs of the same retrain's outcome read (``S3OutcomeStore.read_since``) and what the
  hour-by-hour listing cost (one LIST per hour partition; counted, not run).
- ``drift_24h_s3_requests``: every S3 request of a 24-hour drift-check's window reads, made with the
  arguments ``check_drift`` gives them (``read_since(window.start)`` and every request of
  ``iter_requests(window.start, window.end)``); the card's and the reports' few requests are not in it.
  Target <= 100, which needs per-hour partial aggregates (later in issue 10): until then every capture
  object of the window is one GET, and the figure says so.

The capture objects are put straight into moto's S3 backend (boto3 PUTs of 72,000 objects in process
would take minutes); everything read goes through boto3 and the real adapters. It runs in about a
minute: 11 s of writing, and most of the rest is moto answering the retrain's 73 LISTs (moto filters
and sorts every key of the bucket for each page). Merges its figures into .bench/latest.json.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from benchmarks.harness import AWS_ENV, BENCH_DIR, ROOT, progress

RESULTS = BENCH_DIR / "latest.json"
BUCKET = "mlops-reads-bench"
MODEL = "reads-bench"
OBJECTS_PER_HOUR = 100
CAPTURE_DAYS = 30
DRIFT_HOURS = 24
LABELS_PER_HOUR = 10
LABEL_DELAY = timedelta(minutes=90)
# Not on an hour, as a retrain's window is not: its first and last hours are partial.
END = datetime(2026, 2, 1, 9, 17, 23, tzinfo=UTC)
TARGET_RETRAIN_LISTS, TARGET_DRIFT_REQUESTS = 100, 100


@dataclass
class Requests:
    """S3 API calls by operation and HTTP requests sent, while counting."""

    calls: Counter[str] = field(default_factory=Counter)
    sent: int = 0

    def on_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def on_send(self, **_: Any) -> None:
        self.sent += 1


@contextmanager
def counted(s3: Any) -> Iterator[Requests]:
    """Count the requests ``s3`` makes inside the block."""
    requests = Requests()
    s3.meta.events.register("before-call.s3", requests.on_call)
    s3.meta.events.register("before-send.s3", requests.on_send)
    try:
        yield requests
    finally:
        s3.meta.events.unregister("before-call.s3", requests.on_call)
        s3.meta.events.unregister("before-send.s3", requests.on_send)


class BackendPuts:
    """Just enough of an S3 client for ``CaptureWriter.write``: ``put_object`` into moto's backend, no HTTP."""

    def __init__(self) -> None:
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        self._backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict[str, str]:  # noqa: N803 - boto3's names
        return {"ETag": self._backend.put_object(Bucket, Key, Body).etag}


def hours() -> list[datetime]:
    """Every hour that holds capture of the retrain window ending at ``END``."""
    first = (END - timedelta(days=CAPTURE_DAYS)).replace(minute=0, second=0, microsecond=0)
    return [first + timedelta(hours=h) for h in range(int((END - first) / timedelta(hours=1)) + 1)]


def write_capture(writer: Any) -> int:
    """``OBJECTS_PER_HOUR`` objects of one or two records in every hour; returns the object count."""
    from functions.adapters.capture import CaptureRecord

    rng = np.random.default_rng(10)
    objects = 0
    for hour in hours():
        for k in range(OBJECTS_PER_HOUR):
            at = hour.timestamp() + 3600 * k / OBJECTS_PER_HOUR
            batch = []
            for r in range(1 + k % 2):
                values = rng.normal(size=3)
                batch.append(
                    CaptureRecord(
                        request_id=f"{hour:%Y%m%d%H}-{k}-{r}",
                        timestamp=at + r * 1e-3,
                        model_version=1,
                        columns={f"x{j}": values[j : j + 1] for j in range(3)},
                        predictions=np.array([int(values[0] > 0)]),
                        probabilities=None,
                        n_rows=1,
                    )
                )
            writer.write(batch)
            objects += 1
    return objects


def write_outcomes(store: Any) -> int:
    """One batch an hour labelling ``LABELS_PER_HOUR`` of its rows, received ``LABEL_DELAY`` later (not after END)."""
    batches = 0
    for hour in hours():
        labels = [(f"{hour:%Y%m%d%H}-{k}-0-0", k % 2) for k in range(0, OBJECTS_PER_HOUR, 10)][:LABELS_PER_HOUR]
        store.put_batch(MODEL, labels, received_at=min(hour + LABEL_DELAY, END))
        batches += 1
    return batches


def measure() -> dict[str, float]:
    """Write the history into in-process moto and count the reads; the flat figures for latest.json."""
    os.environ.update(AWS_ENV)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        os.environ.pop(name, None)  # in-process moto, whatever the shell points boto3 at
    import boto3
    from moto import mock_aws

    from functions.adapters.capture import CaptureWriter
    from functions.adapters.capture_reader import S3CaptureReader, hour_prefixes
    from functions.adapters.outcomes import S3OutcomeStore

    figures: dict[str, float] = {}
    with mock_aws():
        s3 = boto3.session.Session().client("s3")
        s3.create_bucket(Bucket=BUCKET)
        began = time.perf_counter()
        progress(f"writing {CAPTURE_DAYS} days of capture at {OBJECTS_PER_HOUR} objects an hour into moto")
        objects = write_capture(CaptureWriter(BackendPuts(), BUCKET, "capture", MODEL))
        outcomes = S3OutcomeStore(s3, BUCKET, "outcomes")
        batches = write_outcomes(outcomes)
        written = time.perf_counter() - began
        progress(f"  {objects:,} capture objects and {batches} outcome batches in {written:.1f} s")
        reader = S3CaptureReader(s3, BUCKET, "capture")

        retrain_start = END - timedelta(days=CAPTURE_DAYS)
        listing_began = time.perf_counter()
        with counted(s3) as capture_listing:
            keys = reader.keys(MODEL, retrain_start, END)
        listing_seconds = time.perf_counter() - listing_began
        with counted(s3) as retrain_outcomes:
            labels = outcomes.read_since(MODEL, retrain_start)
        hourly = len(hour_prefixes("capture", MODEL, retrain_start, END))

        drift_start = END - timedelta(hours=DRIFT_HOURS)
        read_began = time.perf_counter()
        with counted(s3) as drift:
            known = outcomes.read_since(MODEL, drift_start)
            drift_outcome_gets = drift.calls["GetObject"]
            rows = sum(r.n_rows for r in reader.iter_requests(MODEL, drift_start, END))
        drift_seconds = time.perf_counter() - read_began
        with counted(s3) as whole_history:
            outcomes.read_all(MODEL)

    figures.update(
        {
            "reads_capture_objects": float(objects),
            "reads_write_seconds": round(written, 2),
            "retrain_30d_list_calls": float(capture_listing.calls["ListObjectsV2"]),
            "retrain_30d_capture_keys": float(len(keys)),
            "retrain_30d_list_seconds": round(listing_seconds, 2),
            "retrain_30d_list_calls_hour_by_hour": float(hourly),
            "retrain_30d_outcome_list_calls": float(retrain_outcomes.calls["ListObjectsV2"]),
            "retrain_30d_outcome_gets": float(retrain_outcomes.calls["GetObject"]),
            "drift_24h_s3_requests": float(drift.sent),
            "drift_24h_s3_list_calls": float(drift.calls["ListObjectsV2"]),
            "drift_24h_s3_gets": float(drift.calls["GetObject"]),
            "drift_24h_outcome_gets": float(drift_outcome_gets),
            "drift_24h_outcome_gets_read_all": float(whole_history.calls["GetObject"]),
            "drift_24h_rows": float(rows),
            "drift_24h_read_seconds": round(drift_seconds, 2),
        }
    )
    progress(
        f"  retrain window: {len(keys):,} keys, {len(labels)} labels; drift window: {rows:,} rows, {len(known)} labels"
    )
    return figures


def report(f: dict[str, float]) -> None:
    lists, requests = f["retrain_30d_list_calls"], f["drift_24h_s3_requests"]
    print()
    print(f"reads: {f['reads_capture_objects']:,.0f} capture objects over {CAPTURE_DAYS} days, in-process moto S3")
    print(
        f"retrain, {CAPTURE_DAYS}-day window: capture {lists:.0f} LIST for {f['retrain_30d_capture_keys']:,.0f} keys"
        f" (hour by hour it was {f['retrain_30d_list_calls_hour_by_hour']:.0f}); outcomes"
        f" {f['retrain_30d_outcome_list_calls']:.0f} LIST, {f['retrain_30d_outcome_gets']:.0f} GET;"
        f" moto took {f['retrain_30d_list_seconds']:.1f} s to answer them (it filters and sorts the bucket's keys each)"
    )
    print(
        f"  target retrain_30d_list_calls <= {TARGET_RETRAIN_LISTS}: {lists:.0f} -> "
        f"{'met' if lists <= TARGET_RETRAIN_LISTS else 'MISSED'}"
    )
    print(
        f"drift-check, {DRIFT_HOURS}-hour window: {requests:,.0f} S3 requests ({f['drift_24h_s3_list_calls']:.0f} LIST,"
        f" {f['drift_24h_s3_gets']:,.0f} GET, of which {f['drift_24h_outcome_gets']:.0f} outcome objects; reading"
        f" every outcome would open {f['drift_24h_outcome_gets_read_all']:.0f}) in {f['drift_24h_read_seconds']:.1f} s"
    )
    print(
        f"  target drift_24h_s3_requests <= {TARGET_DRIFT_REQUESTS}: {requests:,.0f} -> "
        f"{'met' if requests <= TARGET_DRIFT_REQUESTS else 'MISSED'}"
        + ("" if requests <= TARGET_DRIFT_REQUESTS else " (one GET per capture object until per-hour aggregates)")
    )


def merge_results(figures: dict[str, float]) -> None:
    """Add the figures to .bench/latest.json, keeping every other key."""
    BENCH_DIR.mkdir(exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def main() -> None:
    started = time.perf_counter()
    figures = measure()
    figures["reads_bench_seconds"] = round(time.perf_counter() - started, 2)
    report(figures)
    merge_results(figures)
    print(f"merged into {RESULTS.relative_to(ROOT)} in {figures['reads_bench_seconds']:.0f} s")


if __name__ == "__main__":
    main()
