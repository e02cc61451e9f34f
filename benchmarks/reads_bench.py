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
- ``drift_24h_s3_requests``: every S3 request of one scheduled 24-hour drift-check (``check_drift`` with the
  function's adapters over moto: the card, the outcomes, the window's capture listing, one hourly aggregate
  per whole hour, the capture objects written since the last aggregation, the aggregates it grows, and the
  reports). Before it, the aggregation step (``aggregate_recent``) has caught up with every hour at
  ``END - AGGREGATED_BEFORE``; the objects of the last ``AGGREGATED_BEFORE`` are written after it. Target
  <= 100. Beside it, the same check reading every capture object (``aggregates=None``, as before aggregates).

The capture objects are put straight into moto's S3 backend (boto3 PUTs of 72,000 objects in process
would take minutes); everything read goes through boto3 and the real adapters. It runs in about two
minutes: 11 s of writing, the catch-up aggregation and the check without aggregates (each about 2,500
GETs), and moto answering the retrain's 73 LISTs (moto filters and sorts every key of the bucket for
each page). Merges its figures into .bench/latest.json.
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

from benchmarks.harness import AWS_ENV, BENCH_DIR, ROOT, progress, quiet_stdout

RESULTS = BENCH_DIR / "latest.json"
BUCKET = "mlops-reads-bench"
REGISTRY_BUCKET = "mlops-reads-bench-registry"
BUS = "mlops-reads-bench"
DRIFT_SAMPLE_SIZE = 5000
MODEL = "reads-bench"
OBJECTS_PER_HOUR = 100
CAPTURE_DAYS = 30
DRIFT_HOURS = 24
LABELS_PER_HOUR = 10
LABEL_DELAY = timedelta(minutes=90)
# Not on an hour, as a retrain's window is not: its first and last hours are partial.
END = datetime(2026, 2, 1, 9, 17, 23, tzinfo=UTC)
TARGET_RETRAIN_LISTS, TARGET_DRIFT_REQUESTS = 100, 100
# The aggregation runs every 15 minutes (functions/config.py); the check comes this long after the last run.
AGGREGATED_BEFORE = timedelta(minutes=10)


@dataclass
class Requests:
    """S3 API calls by operation and HTTP requests sent, while counting."""

    calls: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    gets: Counter[str] = field(default_factory=Counter)  # GetObject by what was read (the key's first part)

    def on_call(self, model: Any, **_: Any) -> None:
        self.calls[model.name] += 1

    def on_get(self, params: dict[str, Any], **_: Any) -> None:
        key = str(params.get("Key", ""))
        self.gets["aggregate_rows" if "/rows-" in key else key.split("/", maxsplit=1)[0]] += 1

    def on_send(self, **_: Any) -> None:
        self.sent += 1


@contextmanager
def counted(s3: Any) -> Iterator[Requests]:
    """Count the requests ``s3`` makes inside the block."""
    requests = Requests()
    s3.meta.events.register("before-call.s3", requests.on_call)
    s3.meta.events.register("before-send.s3", requests.on_send)
    s3.meta.events.register("before-parameter-build.s3.GetObject", requests.on_get)
    try:
        yield requests
    finally:
        s3.meta.events.unregister("before-call.s3", requests.on_call)
        s3.meta.events.unregister("before-send.s3", requests.on_send)
        s3.meta.events.unregister("before-parameter-build.s3.GetObject", requests.on_get)


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


def write_capture(writer: Any, version: int, *, after: datetime | None = None, until: datetime | None = None) -> int:
    """``OBJECTS_PER_HOUR`` objects of one or two records in every hour (served after ``after``, until ``until``,
    and not after END); returns the object count."""
    from functions.adapters.capture import CaptureRecord

    rng = np.random.default_rng(10)
    objects = 0
    lo = after.timestamp() if after is not None else float("-inf")
    hi = min(until or END, END).timestamp()
    for hour in hours():
        for k in range(OBJECTS_PER_HOUR):
            at = hour.timestamp() + 3600 * k / OBJECTS_PER_HOUR
            values_of_object = [rng.normal(size=3) for _ in range(1 + k % 2)]
            if not lo < at <= hi:
                continue
            batch = []
            for r, values in enumerate(values_of_object):
                p = 1.0 / (1.0 + np.exp(-values[0]))
                batch.append(
                    CaptureRecord(
                        request_id=f"{hour:%Y%m%d%H}-{k}-{r}",
                        timestamp=at + r * 1e-3,
                        model_version=version,
                        columns={f"x{j}": values[j : j + 1] for j in range(3)},
                        predictions=np.array([int(p > 0.5)]),
                        probabilities=np.array([[1.0 - p, p]]),
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


class CollectedMetrics:
    """drift-check's metric sink, kept in memory (EMF on Lambda; not an S3 request either way)."""

    def __init__(self) -> None:
        self.points: list[Any] = []

    def emit(self, points: Any, dimensions: Any) -> None:
        self.points.extend(points)


def register_model(s3: Any) -> Any:
    """Train and register a logistic regression on ``x0..x2`` (the capture's features); returns its card."""
    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.domain.card import EstimatorSpec, TrainingSpec
    from functions.services.training import train_and_register

    s3.create_bucket(Bucket=REGISTRY_BUCKET)
    s3.put_bucket_versioning(Bucket=REGISTRY_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2000, 3))
    y = (x[:, 0] + rng.normal(scale=0.5, size=2000) > 0).astype(int)
    lines = ["x0,x1,x2,y", *(f"{a:.6f},{b:.6f},{c:.6f},{t}" for (a, b, c), t in zip(x, y, strict=True))]
    datasets = S3DatasetStore(s3, BUCKET, "datasets")
    uri = datasets.upload("reads.csv", ("\n".join(lines) + "\n").encode())
    spec = TrainingSpec(task="binary_classification", target="y", estimator=EstimatorSpec(kind="logistic_regression"))
    return train_and_register(
        S3ModelRegistry(s3, REGISTRY_BUCKET), datasets, model_name=MODEL, dataset_uri=uri, spec=spec
    )


def measure_drift(
    session: Any, s3: Any, *, reader: Any, outcomes: Any, aggregates: Any, registry: Any
) -> dict[str, float]:
    """One scheduled 24-hour drift-check at END with aggregates, and the same check reading every capture object."""
    from functions.adapters.events import EventBridgePublisher
    from functions.adapters.reports import S3ReportStore
    from functions.domain.drift import DriftPolicy
    from functions.services.drift_check import check_drift

    def drift_check(with_aggregates: bool) -> Any:
        return check_drift(
            registry=registry,
            captures=reader,
            outcomes=outcomes,
            publisher=EventBridgePublisher(session.client("events"), BUS, "mlops"),
            reports=S3ReportStore(s3, BUCKET, "reports/drift"),
            metrics=CollectedMetrics(),
            model_name=MODEL,
            policy=DriftPolicy(),
            window_hours=DRIFT_HOURS,
            now=END,
            sample_size=DRIFT_SAMPLE_SIZE,
            aggregates=aggregates if with_aggregates else None,
        )

    read_began = time.perf_counter()
    with counted(s3) as drift, quiet_stdout():
        result = drift_check(True)
    drift_seconds = time.perf_counter() - read_began
    raw_began = time.perf_counter()
    with counted(s3) as raw, quiet_stdout():
        raw_result = drift_check(False)
    raw_seconds = time.perf_counter() - raw_began
    with counted(s3) as whole_history:
        outcomes.read_all(MODEL)
    if (result.report.rows_checked, result.report.outcomes_joined) != (
        raw_result.report.rows_checked,
        raw_result.report.outcomes_joined,
    ) or result.report.drift.model_dump() != raw_result.report.drift.model_dump():
        raise SystemExit("reads_bench: the check from aggregates disagrees with the single pass")

    progress(f"  drift window: {result.report.rows_checked:,} rows, {result.report.outcomes_joined} labelled")
    return {
        "drift_24h_s3_requests": float(drift.sent),
        "drift_24h_s3_list_calls": float(drift.calls["ListObjectsV2"]),
        "drift_24h_s3_gets": float(drift.calls["GetObject"]),
        "drift_24h_s3_puts": float(drift.calls["PutObject"]),
        **{f"drift_24h_s3_gets_{part}": float(n) for part, n in sorted(drift.gets.items())},
        "drift_24h_rows": float(result.report.rows_checked),
        "drift_24h_labelled_rows": float(result.report.outcomes_joined),
        "drift_24h_seconds": round(drift_seconds, 2),
        "drift_24h_s3_requests_without_aggregates": float(raw.sent),
        "drift_24h_seconds_without_aggregates": round(raw_seconds, 2),
        "drift_24h_outcome_gets_read_all": float(whole_history.calls["GetObject"]),
    }


def measure() -> dict[str, float]:
    """Write the history into in-process moto and count the reads; the flat figures for latest.json."""
    os.environ.update(AWS_ENV)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        os.environ.pop(name, None)  # in-process moto, whatever the shell points boto3 at
    import boto3
    from moto import mock_aws

    from functions.adapters.aggregates import S3AggregateStore
    from functions.adapters.capture import CaptureWriter
    from functions.adapters.capture_reader import S3CaptureReader, hour_prefixes
    from functions.adapters.outcomes import S3OutcomeStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.services.drift_hours import aggregate_recent

    figures: dict[str, float] = {}
    with mock_aws():
        session = boto3.session.Session()
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        session.client("events").create_event_bus(Name=BUS)
        progress("training the model the capture was served by")
        card = register_model(s3)
        began = time.perf_counter()
        progress(f"writing {CAPTURE_DAYS} days of capture at {OBJECTS_PER_HOUR} objects an hour into moto")
        aggregated_at = END - AGGREGATED_BEFORE
        objects = write_capture(
            CaptureWriter(BackendPuts(), BUCKET, "capture", MODEL), card.version, until=aggregated_at
        )
        outcomes = S3OutcomeStore(s3, BUCKET, "outcomes")
        batches = write_outcomes(outcomes)
        written = time.perf_counter() - began
        progress(f"  {objects:,} capture objects and {batches} outcome batches in {written:.1f} s")
        reader = S3CaptureReader(s3, BUCKET, "capture")
        aggregates = S3AggregateStore(s3, BUCKET, "aggregates/drift")
        registry = S3ModelRegistry(s3, REGISTRY_BUCKET)

        progress(f"aggregating the {DRIFT_HOURS + 1} hours a 24-hour window touches, as of {aggregated_at:%H:%M}")
        catch_up_began = time.perf_counter()
        with counted(s3) as catch_up, quiet_stdout():
            caught_up = aggregate_recent(
                registry=registry,
                captures=reader,
                aggregates=aggregates,
                model_name=MODEL,
                now=aggregated_at,
                sample_size=DRIFT_SAMPLE_SIZE,
                hours=DRIFT_HOURS + 1,
            )
        catch_up_seconds = time.perf_counter() - catch_up_began
        late = write_capture(CaptureWriter(BackendPuts(), BUCKET, "capture", MODEL), card.version, after=aggregated_at)
        objects += late
        progress(f"  {caught_up['objects_read']:,} objects in {catch_up_seconds:.1f} s; then {late} more written")

        retrain_start = END - timedelta(days=CAPTURE_DAYS)
        listing_began = time.perf_counter()
        with counted(s3) as capture_listing:
            keys = reader.keys(MODEL, retrain_start, END)
        listing_seconds = time.perf_counter() - listing_began
        with counted(s3) as retrain_outcomes:
            labels = outcomes.read_since(MODEL, retrain_start)
        hourly = len(hour_prefixes("capture", MODEL, retrain_start, END))

        figures.update(
            measure_drift(session, s3, reader=reader, outcomes=outcomes, aggregates=aggregates, registry=registry)
        )
        figures["drift_24h_late_objects"] = float(late)

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
            "drift_aggregate_catch_up_s3_requests": float(catch_up.sent),
            "drift_aggregate_catch_up_seconds": round(catch_up_seconds, 2),
        }
    )
    progress(f"  retrain window: {len(keys):,} keys, {len(labels)} labels")
    return figures


def report(f: dict[str, float]) -> None:
    prefix = "drift_24h_s3_gets_"
    gets = ", ".join(f"{k.removeprefix(prefix)} {v:.0f}" for k, v in sorted(f.items()) if k.startswith(prefix))
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
        f" {f['drift_24h_s3_gets']:,.0f} GET ({gets}), {f['drift_24h_s3_puts']:.0f} PUT)"
        f" for {f['drift_24h_rows']:,.0f} rows"
        f" ({f['drift_24h_labelled_rows']:.0f} labelled) in {f['drift_24h_seconds']:.1f} s, with"
        f" {f['drift_24h_late_objects']:.0f} objects written since the last aggregation;"
        f" reading every capture object instead: {f['drift_24h_s3_requests_without_aggregates']:,.0f} requests in"
        f" {f['drift_24h_seconds_without_aggregates']:.1f} s"
    )
    print(
        f"  target drift_24h_s3_requests <= {TARGET_DRIFT_REQUESTS}: {requests:,.0f} -> "
        f"{'met' if requests <= TARGET_DRIFT_REQUESTS else 'MISSED'}"
    )
    print(
        f"aggregation catch-up of {DRIFT_HOURS + 1} hours: {f['drift_aggregate_catch_up_s3_requests']:,.0f} requests in"
        f" {f['drift_aggregate_catch_up_seconds']:.1f} s (on its schedule: what was written since its last run)"
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
