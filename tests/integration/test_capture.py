"""Capture of served requests: gzipped JSON Lines by hour in the data bucket; failures never fail a request."""

from __future__ import annotations

import gzip
import json
import threading
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from functions.adapters.capture import CaptureRecord, CaptureWriter, partition_of
from tests.events import load_event, request_id, response_json

NAME = "breast-cancer"


def captured(s3: Any, bucket: str, prefix: str = f"capture/{NAME}/") -> dict[str, list[dict[str, Any]]]:
    """Every capture object under ``prefix``: key to its decoded JSON lines."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    out = {}
    for key in keys:
        obj = s3.get_object(Bucket=bucket, Key=key)
        assert obj["ContentType"] == "application/x-ndjson"
        out[key] = [json.loads(line) for line in gzip.decompress(obj["Body"].read()).splitlines()]
    return out


def test_served_requests_land_as_gzipped_json_lines_by_hour(champion, aws, cfg, predict_function, lambda_context):
    function = predict_function()
    events = [load_event(n) for n in ("predict_single", "predict_batch", "predict_columns")]
    answers = [response_json(function.handle(e, lambda_context)) for e in events]

    function.env.capture.flush()

    objects = captured(aws, cfg.data_bucket)
    assert len(objects) == 1
    ((key, records),) = objects.items()
    assert key.startswith(f"capture/{NAME}/{partition_of(records[0]['ts'])}/")
    assert key.endswith(".jsonl.gz")
    assert [r["request_id"] for r in records] == [request_id(e) for e in events]
    assert [r["n"] for r in records] == [1, 3, 3]
    assert {r["model_version"] for r in records} == {1}
    for record, answer in zip(records, answers, strict=True):
        assert record["predictions"] == answer["predictions"]
        assert record["probabilities"] == answer["probabilities"]
        assert list(record["features"]) == champion.feature_schema.names
        assert all(len(v) == record["n"] for v in record["features"].values())
    assert records[1]["features"]["mean_radius"] == [17.99, 20.57, 19.69]  # rows 1-3 of data/breast_cancer.csv
    assert records[1]["features"] == records[2]["features"]
    stats = function.env.capture.stats
    assert (stats.captured_rows, stats.written_rows, stats.written_objects, stats.failed_rows) == (7, 7, 1, 0)


def test_partition_is_the_utc_date_and_hour_of_each_record(aws, cfg):
    writer = CaptureWriter(aws, cfg.data_bucket, "/capture/", NAME)
    before = datetime(2026, 11, 23, 16, 59, 59, tzinfo=UTC).timestamp()
    after = datetime(2026, 11, 23, 17, 0, 1, tzinfo=UTC).timestamp()

    writer.write([record("a", before), record("b", after), record("c", before)])

    objects = captured(aws, cfg.data_bucket)
    by_hour = {key.rsplit("/", 1)[0]: [r["request_id"] for r in recs] for key, recs in objects.items()}
    assert by_hour == {
        f"capture/{NAME}/dt=2026-11-23/hour=16": ["a", "c"],
        f"capture/{NAME}/dt=2026-11-23/hour=17": ["b"],
    }
    assert any(key.split("/")[-1].startswith("20261123T165959-") for key in objects)
    assert partition_of(datetime(2027, 1, 1, 0, 30, tzinfo=UTC).timestamp()) == "dt=2027-01-01/hour=00"


def record(rid: str, ts: float, n: int = 1) -> CaptureRecord:
    return CaptureRecord(
        request_id=rid,
        timestamp=ts,
        model_version=1,
        columns={"x": np.arange(n, dtype=np.float64)},
        predictions=np.zeros(n, dtype=np.int64),
        probabilities=None,
        n_rows=n,
    )


def test_sample_rate_zero_captures_nothing(champion, aws, cfg, predict_function, lambda_context):
    function = predict_function(capture_sample_rate=0.0)

    assert function.handle(load_event("predict_batch"), lambda_context)["statusCode"] == 200
    function.env.capture.flush()

    assert captured(aws, cfg.data_bucket) == {}
    assert function.env.capture.stats.captured_rows == 0


def test_rejected_requests_are_not_captured(champion, aws, cfg, predict_function, lambda_context):
    function = predict_function()

    assert function.handle(load_event("predict_invalid"), lambda_context)["statusCode"] == 422
    function.env.capture.flush()

    assert captured(aws, cfg.data_bucket) == {}


def _capture_failures_emitted(out: str) -> float:
    """The sum of every ``CaptureFailures`` value in the EMF lines of ``out``."""
    total = 0.0
    for line in out.splitlines():
        doc = json.loads(line) if line.startswith('{"_aws"') else {}
        if "CaptureFailures" in doc:
            value = doc["CaptureFailures"]
            total += value[0] if isinstance(value, list) else value
            assert doc["model_name"] == NAME and doc["model_version"] == "1"
    return total


@pytest.mark.usefixtures("champion")
def test_a_failing_capture_never_fails_the_prediction_and_is_counted_when_it_fails(
    predict_function, lambda_context, capsys
):
    function = predict_function(data_bucket="mlops-local-no-such-data", capture_max_rows=1)

    responses = [function.handle(load_event(n), lambda_context) for n in ("predict_single", "predict_batch")]
    function.env.capture.flush()

    assert [r["statusCode"] for r in responses] == [200, 200]
    stats = function.env.capture.stats
    assert (stats.captured_rows, stats.failed_rows, stats.written_rows) == (4, 4, 0)
    # Every failed row is counted by the writer as it fails: no later request is needed to report it.
    assert _capture_failures_emitted(capsys.readouterr().out) == 4
    assert function.handle(load_event("predict_single"), lambda_context)["statusCode"] == 200


def test_a_deleted_data_bucket_never_fails_the_prediction(champion, aws, cfg, predict_function, lambda_context):
    function = predict_function()
    assert function.handle(load_event("predict_single"), lambda_context)["statusCode"] == 200
    function.env.capture.flush()
    for obj in aws.list_objects_v2(Bucket=cfg.data_bucket).get("Contents", []):
        aws.delete_object(Bucket=cfg.data_bucket, Key=obj["Key"])
    aws.delete_bucket(Bucket=cfg.data_bucket)

    response = function.handle(load_event("predict_batch"), lambda_context)
    function.env.capture.flush()

    assert response["statusCode"] == 200
    assert function.env.capture.stats.written_rows == 1
    assert function.env.capture.stats.failed_rows == 3


def test_failures_are_reported_to_the_callback(aws):
    reports: list[tuple[str, int]] = []
    writer = CaptureWriter(
        aws, "mlops-local-no-such-data", "capture", NAME, on_failure=lambda m, r: reports.append((m, r))
    )

    writer.write([record("a", 1_795_449_600.0, n=5)])

    assert reports == [("capture write failed: StorageError", 5)]
    assert writer.stats.failed_rows == 5


def test_a_failing_failure_callback_is_contained(aws):
    def explode(message: str, rows: int) -> None:
        raise RuntimeError("callback broke")

    writer = CaptureWriter(aws, "mlops-local-no-such-data", "capture", NAME, on_failure=explode)

    writer.write([record("a", 1_795_449_600.0)])

    assert writer.stats.failed_rows == 1


def test_buffer_is_handed_over_when_full_or_old(aws, cfg):
    now = [1_795_449_600.0]
    writer = CaptureWriter(
        aws, cfg.data_bucket, "capture", NAME, max_rows=3, max_age_seconds=10.0, clock=lambda: now[0]
    )

    writer.add(record("a", now[0], n=2))
    writer.flush_if_due()  # 2 rows, 0 s old: not due
    assert writer.stats.written_rows == 0
    writer.add(record("b", now[0], n=1))  # 3 rows: full
    writer.flush()
    assert (writer.stats.written_rows, writer.stats.written_objects) == (3, 1)

    writer.add(record("c", now[0], n=1))
    now[0] += 10.0
    writer.flush_if_due()  # 10 s old: due
    writer.flush()
    assert (writer.stats.written_rows, writer.stats.written_objects) == (4, 2)


class _GatedS3:
    """Wraps the moto client; ``put_object`` waits at a gate so the writer thread can be held busy."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.entered = threading.Event()
        self.release = threading.Event()

    def put_object(self, **kwargs: Any) -> Any:
        self.entered.set()
        assert self.release.wait(10)
        return self._s3.put_object(**kwargs)


def test_a_full_queue_drops_batches_and_counts_them(aws, cfg):
    gated = _GatedS3(aws)
    reports: list[tuple[str, int]] = []
    writer = CaptureWriter(
        gated, cfg.data_bucket, "capture", NAME, max_rows=1, max_pending_batches=1,
        on_failure=lambda m, r: reports.append((m, r)),
    )  # fmt: skip

    writer.add(record("a", 1_795_449_600.0, n=1))  # taken by the writer thread, which blocks in put_object
    assert gated.entered.wait(10)
    writer.add(record("b", 1_795_449_600.0, n=2))  # waits in the queue
    writer.add(record("c", 1_795_449_600.0, n=4))  # queue full: dropped, counted, never raised
    gated.release.set()
    writer.flush()

    assert (writer.stats.written_rows, writer.stats.dropped_rows, writer.stats.captured_rows) == (3, 4, 7)
    assert reports == [("capture queue full; batch dropped", 4)]
