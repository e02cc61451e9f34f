"""`make bench` (after the predict bench): drift-check wall time and peak memory for 10k, 100k and 1M captured rows.

What is measured: the real drift-check handler (``instrument(DriftCheckFunction(...))``, as Lambda runs it)
reading capture objects from moto's S3 server on 127.0.0.1 (a child process, as in the predict bench), in a
fresh Python process per size, so each size's peak memory (``VmHWM``) is its own. Time is the handler
call only (resolve the champion, read its card and the outcomes, list and stream every capture object,
count, test, write each hour's drift aggregate, write both reports, publish the event, flush the
metrics); imports are reported apart. The same check then runs again in the same process ("again"):
every hour of the window now has its aggregate, so it reads 24 aggregates and, for the labels, their
rows objects instead of the capture (``drift_rows<N>_from_aggregates_*``; its peak is the process's).

The traffic is the demo's schema (30 numeric features of ``data/breast_cancer.csv``, resampled), served
by the registered logistic regression, captured as predict's capture writer captures it: gzipped JSON
Lines objects of up to 1000 rows (``capture_max_rows``), requests of 1, 10 or 100 rows (half, 30% and 20%
of requests; about 23.5 rows a request), spread over a 24 hour window whose last quarter has two
features scaled by 1.5 (so the verdict is DRIFT and the full path runs), with outcomes for 5% of rows.

Objects go through moto's S3 rather than a local stand-in reader, so the measured path is the deployed
one: the service reads capture ahead on a thread, so moto's GETs (about 20 ms an object) overlap the
counting and add only a few seconds at 1M rows (measured against a local-file reader). Generating 1M
rows (model outputs, JSON, gzip) takes about 20 s and uploading them about 15 s, so each size's objects
are generated once into ``.bench/drift_capture/`` and only re-uploaded on later runs (delete that
folder to regenerate). Timings move with the machine's load; the load average is recorded beside them.

Partials (``--partials-rows``, 10M by default): a 24-hour window built as 24 hour aggregates, as the
aggregation step writes them (``functions/services/drift_hours.py``). Each hour's rows (the same schema,
model, request sizes and shift) are generated in memory, then fed request by request, with their row ids,
into a ``DriftAccumulator``, with each row's outputs kept by row-id hash (``JoinRows``); the aggregate is
written as JSON and the outputs as a gzipped rows object: that is the per-hour cost, timed apart from
generating the rows. A fresh process then loads the 24 aggregates, merges them
(``DriftAccumulator.from_partials``) and computes the verdict and the distributions:
``drift_partials_rows<N>_seconds`` times that step, and ``..._peak_mb`` is that process's peak memory
(``VmHWM``, imports and the card's baseline included, as for the single pass). With labels (5% of rows), it
then reads the 24 rows objects one at a time and joins them (``..._labelled_seconds``, ``..._labelled_peak_mb``).
Files stand in for S3 here; ``reads_bench`` counts the requests of the same path against moto.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import BENCH_DIR, ROOT, STAGE, LambdaContextStub, MotoServer, progress, quiet_stdout

SIZES = (10_000, 100_000, 1_000_000)
REQUEST_ROWS = (1, 10, 100)
REQUEST_SHARES = (0.5, 0.3, 0.2)
OBJECT_ROWS = 1000
LABELLED_SHARE = 0.05
SHIFTED = ("mean_radius", "worst_texture")
SHIFT_SCALE = 1.5
WINDOW_START = datetime(2026, 1, 1, tzinfo=UTC)
WINDOW_HOURS = 24
GENERATOR_VERSION = 1
CACHE = BENCH_DIR / "drift_capture"
RESULTS = BENCH_DIR / "latest.json"
TARGET_SECONDS, TARGET_PEAK_MB, TARGET_ROWS = 60.0, 1500.0, 1_000_000
PARTIALS_ROWS = 10_000_000
PARTIALS = BENCH_DIR / "drift_partials"


@dataclass(frozen=True)
class Measured:
    """One size's figures, as the child process reported them."""

    rows: int
    objects: int
    seconds: float
    import_seconds: float
    baseline_mb: float
    peak_mb: float
    verdict: str
    drifted: list[str]
    labeled_rows: int
    again_seconds: float
    again_peak_mb: float


def _capture_prefix(rows: int) -> str:
    return f"bench-capture/rows{rows}"


def _outcomes_prefix(rows: int) -> str:
    return f"bench-outcomes/rows{rows}"


def _maxrss_mb() -> float:
    """This process's peak resident memory. Linux keeps ``ru_maxrss`` across exec, so a child started by
    a large parent would report the parent's size: ``VmHWM`` (reset at exec) is read where it exists."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


# --------------------------------------------------------------------------- generating traffic


def _request_sizes(rows: int, rng: np.random.Generator) -> list[int]:
    sizes: list[int] = []
    total = 0
    while total < rows:
        size = min(int(rng.choice(REQUEST_ROWS, p=REQUEST_SHARES)), rows - total)
        sizes.append(size)
        total += size
    return sizes


def generate(rows: int, model: Any, model_name: str, folder: Path) -> None:
    """Write the capture objects of one size under ``folder`` (keys relative to the capture prefix) and its outcomes."""
    from functions.adapters.capture import CaptureRecord, encode_batch, partition_of
    from functions.config import stage_config

    demo = stage_config(STAGE).demo
    from functions.domain.dataset import parse_csv

    data = parse_csv((ROOT / "data" / demo.file).read_text(), demo.training.target, set(), regression=False)
    names = list(data.columns)
    rng = np.random.default_rng(rows)
    sizes = _request_sizes(rows, rng)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    outcomes: list[tuple[str, int]] = []
    span = WINDOW_HOURS * 3600 * 0.999
    done, request, objects = 0, 0, 0
    while request < len(sizes):
        # One object: whole requests up to OBJECT_ROWS rows, as one capture flush writes them.
        batch_sizes: list[int] = []
        while request < len(sizes) and (not batch_sizes or sum(batch_sizes) + sizes[request] <= OBJECT_ROWS):
            batch_sizes.append(sizes[request])
            request += 1
        n = sum(batch_sizes)
        pick = rng.integers(0, data.n_rows, size=n)
        shifted = done >= 0.75 * rows
        columns = {k: data.columns[k][pick] * (SHIFT_SCALE if shifted and k in SHIFTED else 1.0) for k in names}
        proba = model.predict_proba(np.column_stack([columns[k] for k in names]))
        labels = model.classes_[proba.argmax(axis=1)]
        ts = WINDOW_START.timestamp() + span * done / rows
        records, offset = [], 0
        for size in batch_sizes:
            part = slice(offset, offset + size)
            rid = uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | request).hex
            records.append(
                CaptureRecord(
                    request_id=rid,
                    timestamp=ts + offset * 1e-3,
                    model_version=1,
                    columns={k: v[part] for k, v in columns.items()},
                    predictions=labels[part],
                    probabilities=proba[part],
                    n_rows=size,
                )
            )
            for i in np.flatnonzero(rng.random(size) < LABELLED_SHARE):
                outcomes.append((f"{rid}-{i}", int(data.target[pick[offset + i]])))
            offset += size
        stamp = datetime.fromtimestamp(ts, UTC).strftime("%Y%m%dT%H%M%S")
        path = tmp / model_name / partition_of(ts) / f"{stamp}-{objects:06d}.jsonl.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_batch(records))
        objects += 1
        done += n
        if objects % 200 == 0:
            progress(f"  generated {done:,} of {rows:,} rows ({objects} objects)")
    (tmp / "outcomes.json").write_text(json.dumps(outcomes))
    (tmp / "manifest.json").write_text(json.dumps({"version": GENERATOR_VERSION, "rows": rows, "objects": objects}))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)


def cached(rows: int, model: Any, model_name: str) -> Path:
    """The folder of one size's generated objects, generating them when missing or stale."""
    folder = CACHE / f"rows{rows}"
    manifest = folder / "manifest.json"
    if manifest.exists():
        doc = json.loads(manifest.read_text())
        if doc.get("version") == GENERATOR_VERSION and doc.get("rows") == rows:
            return folder
    started = time.perf_counter()
    progress(f"generating {rows:,} captured rows (once; kept in {folder.relative_to(ROOT)})")
    generate(rows, model, model_name, folder)
    progress(f"  generated in {time.perf_counter() - started:.1f} s")
    return folder


def upload(s3: Any, bucket: str, rows: int, folder: Path, *, outcome_store: Any, model_name: str) -> int:
    """Put one size's objects under its capture prefix and its outcomes in batches; returns the object count."""
    files = sorted(p for p in folder.rglob("*.jsonl.gz"))
    prefix = _capture_prefix(rows)
    for i, path in enumerate(files, 1):
        key = f"{prefix}/{path.relative_to(folder).as_posix()}"
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes(), ContentType="application/x-ndjson")
        if i % 250 == 0:
            progress(f"  uploaded {i} of {len(files)} objects")
    outcomes = [tuple(o) for o in json.loads((folder / "outcomes.json").read_text())]
    for start in range(0, len(outcomes), 1000):
        outcome_store.put_batch(model_name, outcomes[start : start + 1000], received_at=WINDOW_START)
    return len(files)


# --------------------------------------------------------------------------- the measured child


def child(rows: int) -> None:
    """Run one drift check in this (fresh) process and print its figures as one JSON line."""
    started = time.perf_counter()
    from functions.bootstrap import AwsClients
    from functions.handlers.drift_check import DriftCheckEnvironment, DriftCheckFunction, instrument
    from functions.settings import DriftCheckSettings

    handler = instrument(DriftCheckFunction(DriftCheckEnvironment(DriftCheckSettings.from_environment(), AwsClients())))
    imported = time.perf_counter() - started
    baseline = _maxrss_mb()
    end = WINDOW_START + timedelta(hours=WINDOW_HOURS)
    event = {"start": WINDOW_START.isoformat(), "end": end.isoformat()}
    context: Any = LambdaContextStub(function_name="mlops-local-drift-check")
    with quiet_stdout():
        began = time.perf_counter()
        result = handler(event, context)
        seconds = time.perf_counter() - began
    peak = _maxrss_mb()
    with quiet_stdout():  # the same window again: every hour now has its aggregate
        began = time.perf_counter()
        again = handler(event, context)
        again_seconds = time.perf_counter() - began
    if (again["rows_checked"], again["verdict"], again["drifted"]) != (
        result["rows_checked"],
        result["verdict"],
        result["drifted"],
    ):
        raise SystemExit("drift_bench: the check from aggregates disagrees with the first")
    performance = result.get("performance") or {}
    print(
        json.dumps(
            {
                "rows": result["rows_checked"],
                "seconds": seconds,
                "import_seconds": imported,
                "baseline_mb": baseline,
                "peak_mb": peak,
                "again_seconds": again_seconds,
                "again_peak_mb": _maxrss_mb(),
                "verdict": result["verdict"],
                "drifted": result["drifted"],
                "labeled_rows": performance.get("labeled_rows", 0),
            }
        ),
        flush=True,
    )


def measure(rows: int, objects: int, endpoint_env: dict[str, str]) -> Measured:
    """Run the check for one size in a fresh interpreter against the moto server."""
    from functions.config import function_environment, stage_config

    env = {
        **os.environ,
        **function_environment(stage_config(STAGE), "drift_check"),
        **endpoint_env,
        "CAPTURE_PREFIX": _capture_prefix(rows),
        "OUTCOMES_PREFIX": _outcomes_prefix(rows),
        "REPORTS_PREFIX": f"bench-reports/rows{rows}",
        "AGGREGATES_PREFIX": f"bench-aggregates/rows{rows}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.drift_bench", "--child", str(rows)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"drift check of {rows:,} rows failed:\n{done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return Measured(objects=objects, **figures)


# --------------------------------------------------------------------------- hourly partials


def build_partials(rows: int, folder: Path) -> dict[str, float]:
    """Write a 24-hour window of ``rows`` rows as 24 hour aggregates with their rows objects (and the baseline,
    the classes and 5% of the rows' labels) in ``folder``; time each hour."""
    from functions.config import stage_config
    from functions.domain.dataset import parse_csv
    from functions.domain.drift import DriftAccumulator, row_hashes
    from functions.domain.drift.hourly import HourAggregate, HourRows, JoinRows, VersionHour
    from functions.domain.training import train

    demo = stage_config(STAGE).demo
    data = parse_csv((ROOT / "data" / demo.file).read_text(), demo.training.target, set(), regression=False)
    trained = train(data, demo.training)
    names = list(data.columns)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "baseline.json").write_text(trained.baseline.model_dump_json())
    (folder / "classes.json").write_text(json.dumps(trained.classes))
    rng = np.random.default_rng(rows)
    build_seconds: list[float] = []
    json_bytes = rows_bytes = 0
    labels: dict[str, int] = {}
    for hour in range(WINDOW_HOURS):
        n = rows * (hour + 1) // WINDOW_HOURS - rows * hour // WINDOW_HOURS
        pick = rng.integers(0, data.n_rows, size=n)
        shifted = hour >= 0.75 * WINDOW_HOURS
        columns = {k: data.columns[k][pick] * (SHIFT_SCALE if shifted and k in SHIFTED else 1.0) for k in names}
        proba = trained.model.predict_proba(np.column_stack([columns[k] for k in names]))
        predictions = trained.model.classes_[np.argmax(proba, axis=1)].tolist()
        sizes = _request_sizes(n, rng)
        request_ids = [uuid.UUID(int=int(rng.integers(0, 2**63)) << 64 | i).hex for i in range(len(sizes))]
        began = time.perf_counter()
        acc = DriftAccumulator(trained.baseline, demo.training.task)
        join = JoinRows()
        offset = 0
        for request_id, size in zip(request_ids, sizes, strict=True):
            part = slice(offset, offset + size)
            row_ids = [f"{request_id}-{i}" for i in range(size)]
            acc.add({k: v[part] for k, v in columns.items()}, proba[part], size, row_ids=row_ids)
            join.extend(  # what HourBuilder keeps per row for the label join
                JoinRows(
                    row_keys=[f"{k:016x}" for k in row_hashes(row_ids).tolist()],
                    predictions=predictions[part],
                    probabilities=proba[part].tolist(),
                )
            )
            offset += size
        at = WINDOW_START + timedelta(hours=hour)
        aggregate = HourAggregate(
            model_name="bench",
            hour=at,
            sample_size=acc.sample_size,
            capture_keys=[f"capture/bench/{at:%Y%m%d%H}/{k:04d}.json.gz" for k in range(-(-n // 1000))],
            versions={1: VersionHour(rows=n, drift=acc.to_partial())},
            rows_object=f"hour{hour:02d}.rows.json.gz",
            updated_at=at + timedelta(hours=1),
        )
        text = aggregate.model_dump_json()
        rows_body = gzip.compress(HourRows(versions={1: join}).model_dump_json().encode(), compresslevel=5)
        build_seconds.append(time.perf_counter() - began)
        (folder / f"hour{hour:02d}.json").write_text(text)
        (folder / f"hour{hour:02d}.rows.json.gz").write_bytes(rows_body)
        json_bytes += len(text)
        rows_bytes += len(rows_body)
        labelled = rng.random(n) < LABELLED_SHARE
        offset = 0
        for request_id, size in zip(request_ids, sizes, strict=True):
            for i in np.flatnonzero(labelled[offset : offset + size]).tolist():
                labels[f"{request_id}-{i}"] = int(rng.random() < 0.5)
            offset += size
        progress(
            f"  hour {hour:2d}: {n:,} rows into an aggregate in {build_seconds[-1]:.2f} s ({len(text) / 1e6:.1f} MB,"
            f" rows object {len(rows_body) / 1e6:.1f} MB gzipped)"
        )
    (folder / "labels.json").write_text(json.dumps(labels))
    return {
        "hour_build_seconds_mean": float(np.mean(build_seconds)),
        "hour_build_seconds_max": float(np.max(build_seconds)),
        "json_mb": json_bytes / 1e6,
        "rows_mb": rows_bytes / 1e6,
        "labels": float(len(labels)),
    }


def partials_child(folder: Path) -> None:
    """Load the 24 hour aggregates of ``folder``, merge and judge them; then join the labels through their rows
    objects. Print the figures as one JSON line."""
    from functions.config import stage_config
    from functions.domain.card import DriftBaseline
    from functions.domain.drift import DriftAccumulator, DriftPolicy, PerformanceAccumulator
    from functions.domain.drift.hourly import HourAggregate, HourRows
    from functions.services.drift_check import join_rows, labels_by_row_key

    policy = DriftPolicy()
    baseline = DriftBaseline.model_validate_json((folder / "baseline.json").read_text())  # the card, read anyway
    classes = json.loads((folder / "classes.json").read_text())
    task = stage_config(STAGE).demo.training.task
    files = sorted(folder.glob("hour??.json"))
    baseline_mb = _maxrss_mb()
    began = time.perf_counter()
    aggregates = [HourAggregate.model_validate_json(path.read_bytes()) for path in files]
    merged = DriftAccumulator.from_partials(baseline, [a.versions[1].drift for a in aggregates if a.versions[1].drift])
    report = merged.report(policy)
    merged.distributions()
    seconds = time.perf_counter() - began
    peak = _maxrss_mb()
    assert merged.task == task
    began = time.perf_counter()
    labels = labels_by_row_key(json.loads((folder / "labels.json").read_text()))
    performance = PerformanceAccumulator(task, classes)
    joined = 0
    for aggregate in aggregates:
        assert aggregate.rows_object is not None
        stored = HourRows.model_validate_json(gzip.decompress((folder / aggregate.rows_object).read_bytes()))
        joined += join_rows(performance, stored.versions[1], labels)
        del stored
    performance.metrics()
    labelled_seconds = time.perf_counter() - began
    print(
        json.dumps(
            {
                "rows": merged.n_rows,
                "partials": len(files),
                "seconds": seconds,
                "baseline_mb": baseline_mb,
                "peak_mb": peak,
                "labelled_seconds": labelled_seconds,
                "labelled_peak_mb": _maxrss_mb(),
                "joined": joined,
                "verdict": report.verdict,
                "drifted": report.drifted,
            }
        ),
        flush=True,
    )


def measure_partials(rows: int) -> dict[str, float]:
    """Build the hourly partials of ``rows`` rows, then load, merge and judge them in a fresh interpreter."""
    folder = PARTIALS / f"rows{rows}"
    progress(f"partials: {rows:,} rows as {WINDOW_HOURS} hourly partials")
    built = build_partials(rows, folder)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.drift_bench", "--partials-child", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"merging the partials of {rows:,} rows failed:\n{done.stderr[-3000:]}")
    merged = json.loads(done.stdout.strip().splitlines()[-1])
    print()
    print(f"drift-check from {merged['partials']} hourly partials of the demo schema, {merged['rows']:,} rows")
    print(
        f"  per hour: {built['hour_build_seconds_mean']:.2f} s mean, {built['hour_build_seconds_max']:.2f} s max;"
        f" {built['json_mb']:.1f} MB of aggregates and {built['rows_mb']:.1f} MB of gzipped rows objects in all"
    )
    drifted = ", ".join(merged["drifted"]) or "none"
    print(
        f"  load + merge + verdict: {merged['seconds']:.2f} s, peak {merged['peak_mb']:.0f} MB"
        f" ({merged['baseline_mb']:.0f} MB after imports); {merged['verdict']} ({drifted})"
    )
    print(
        f"  with labels: {merged['joined']:,} labelled rows joined through the 24 rows objects in"
        f" {merged['labelled_seconds']:.2f} s more, peak {merged['labelled_peak_mb']:.0f} MB"
    )
    key = f"drift_partials_rows{rows}"
    return {
        f"{key}_seconds": round(merged["seconds"], 4),
        f"{key}_peak_mb": round(merged["peak_mb"], 1),
        f"{key}_baseline_mb": round(merged["baseline_mb"], 1),
        f"{key}_hour_build_seconds": round(built["hour_build_seconds_mean"], 4),
        f"{key}_json_mb": round(built["json_mb"], 2),
        f"{key}_rows_objects_mb": round(built["rows_mb"], 2),
        f"{key}_labelled_seconds": round(merged["labelled_seconds"], 4),
        f"{key}_labelled_peak_mb": round(merged["labelled_peak_mb"], 1),
    }


# --------------------------------------------------------------------------- the parent


def prepare(endpoint_env: dict[str, str]) -> tuple[Any, Any, Any, str]:
    """Create buckets and the bus in moto, register the demo model; returns (s3, outcome store factory, model, name)."""
    from functions.config import function_environment, stage_config

    cfg = stage_config(STAGE)
    os.environ.update({**function_environment(cfg, "drift_check"), **endpoint_env})
    import boto3

    from functions.adapters.datasets import S3DatasetStore
    from functions.adapters.registry import S3ModelRegistry
    from functions.bootstrap import s3_client
    from functions.services.training import train_and_register

    s3 = s3_client()
    for bucket in (cfg.registry_bucket, cfg.data_bucket):
        s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=cfg.registry_bucket, VersioningConfiguration={"Status": "Enabled"})
    boto3.session.Session().client("events").create_event_bus(Name=cfg.event_bus_name)
    datasets = S3DatasetStore(s3, cfg.data_bucket, cfg.datasets_prefix)
    uri = datasets.upload(cfg.demo.file, (ROOT / "data" / cfg.demo.file).read_bytes())
    registry = S3ModelRegistry(s3, cfg.registry_bucket)
    card = train_and_register(registry, datasets, model_name=cfg.model_name, dataset_uri=uri, spec=cfg.demo.training)
    from functions.domain.pipeline_io import load_pipeline

    model = load_pipeline(registry.read_artifact(card, "pipeline"), card)
    return s3, cfg, model, cfg.model_name


def merge_results(figures: dict[str, float]) -> None:
    """Add the drift figures to .bench/latest.json, keeping every other key (the predict bench's, other sizes')."""
    BENCH_DIR.mkdir(exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def report(results: list[Measured]) -> dict[str, float]:
    """Print the table and return the flat figures for latest.json."""
    print()
    print("drift-check: captured rows of the demo schema (30 numeric features), one fresh process per size")
    print(
        f"{'rows':>10} {'objects':>8} {'seconds':>9} {'µs/row':>8} {'peak MB':>9} {'after imports MB':>17}"
        f" {'labelled':>9} {'again s':>8}  verdict"
    )
    figures: dict[str, float] = {}
    for m in results:
        per_row = m.seconds / m.rows * 1e6
        print(
            f"{m.rows:>10,} {m.objects:>8,} {m.seconds:>9.2f} {per_row:>8.2f} {m.peak_mb:>9.0f} {m.baseline_mb:>17.0f}"
            f" {m.labeled_rows:>9,} {m.again_seconds:>8.2f}  {m.verdict} ({', '.join(m.drifted) or 'none'})"
        )
        key = f"drift_rows{m.rows}"
        figures.update(
            {
                f"{key}_seconds": round(m.seconds, 4),
                f"{key}_peak_mb": round(m.peak_mb, 1),
                f"{key}_baseline_mb": round(m.baseline_mb, 1),
                f"{key}_us_per_row": round(per_row, 3),
                f"{key}_objects": float(m.objects),
                f"{key}_from_aggregates_seconds": round(m.again_seconds, 4),
                f"{key}_from_aggregates_peak_mb": round(m.again_peak_mb, 1),
            }
        )
    figures["drift_import_seconds"] = round(min(m.import_seconds for m in results), 4)
    largest = max(results, key=lambda m: m.rows)
    if largest.rows >= TARGET_ROWS:
        ok = largest.seconds < TARGET_SECONDS and largest.peak_mb < TARGET_PEAK_MB
        print(
            f"target for {TARGET_ROWS:,} rows: < {TARGET_SECONDS:.0f} s and < {TARGET_PEAK_MB:.0f} MB peak: "
            f"{largest.seconds:.1f} s, {largest.peak_mb:.0f} MB -> {'met' if ok else 'MISSED'}"
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--partials-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=str, default=",".join(str(s) for s in SIZES), help="rows, comma-separated")
    parser.add_argument(
        "--partials-rows", type=int, default=PARTIALS_ROWS, help="rows of the hourly-partials window (0: skip)"
    )
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    if args.partials_child:
        partials_child(args.partials_child)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    load_start = os.getloadavg()[0]
    figures = single_pass(sizes) if sizes else {}
    if args.partials_rows > 0:
        figures.update(measure_partials(args.partials_rows))
    load_end = os.getloadavg()[0]
    figures.update({"drift_loadavg_1m_at_start": round(load_start, 4), "drift_loadavg_1m_at_end": round(load_end, 4)})
    print(f"load average (1 min): {load_start:.2f} at start, {load_end:.2f} at end, on {os.cpu_count()} CPUs")
    merge_results(figures)
    print(f"merged into {RESULTS.relative_to(ROOT)} in {time.perf_counter() - started:.0f} s")


def single_pass(sizes: list[int]) -> dict[str, float]:
    """The handler over capture objects in moto, one fresh process per size (see the module docstring)."""
    progress("starting moto (S3, EventBridge) on 127.0.0.1")
    server = MotoServer()
    try:
        with quiet_stdout():
            s3, cfg, model, name = prepare(server.env)
        from functions.adapters.outcomes import S3OutcomeStore

        results = []
        for rows in sizes:
            folder = cached(rows, model, name)
            began = time.perf_counter()
            store = S3OutcomeStore(s3, cfg.data_bucket, _outcomes_prefix(rows))
            objects = upload(s3, cfg.data_bucket, rows, folder, outcome_store=store, model_name=name)
            progress(f"{rows:,} rows: {objects} objects in moto in {time.perf_counter() - began:.1f} s; checking")
            measured = measure(rows, objects, server.env)
            progress(f"  {measured.seconds:.2f} s, peak {measured.peak_mb:.0f} MB, {measured.verdict}")
            results.append(measured)
    finally:
        server.stop()
    return report(results)


if __name__ == "__main__":
    main()
