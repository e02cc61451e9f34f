"""drift-check against moto: verdicts on captured traffic, events on the bus, reports in S3, metrics."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from functions.adapters.capture import CaptureRecord, CaptureWriter
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.bootstrap import AwsClients
from functions.domain.card import ModelCard
from functions.domain.pipeline_io import load_pipeline
from functions.errors import ModelNotFoundError, ValidationError
from functions.handlers.drift_check import DriftCheckEnvironment, DriftCheckFunction, instrument
from functions.settings import DriftCheckSettings
from tests.conftest import CFG, read_dataset
from tests.events import load_event, response_json, with_body

NOW = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)
SHIFTED = ("mean_radius", "worst_texture")


@dataclass
class Bus:
    """The stage's event bus with a rule delivering every event of our source to a queue."""

    events: Any
    sqs: Any
    queue_url: str

    def received(self) -> list[dict[str, Any]]:
        out = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            out += [json.loads(m["Body"]) for m in messages]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
            )


@pytest.fixture
def bus(aws: Any, boto_session: Any) -> Bus:
    events, sqs = boto_session.client("events"), boto_session.client("sqs")
    events.create_event_bus(Name=CFG.event_bus_name)
    url = sqs.create_queue(QueueName="drift-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = json.dumps({"source": [CFG.event_source]})
    events.put_rule(Name="everything", EventBusName=CFG.event_bus_name, EventPattern=pattern)
    events.put_targets(Rule="everything", EventBusName=CFG.event_bus_name, Targets=[{"Id": "queue", "Arn": arn}])
    return Bus(events, sqs, url)


@pytest.fixture
def drift_check(
    aws: Any, bus: Bus, champion: ModelCard, function_env: Callable[..., dict[str, str]]
) -> Callable[..., DriftCheckFunction]:
    """``drift_check(clock=..., **env)``: a drift-check environment configured as the stacks configure it."""

    def build(clock: Callable[[], datetime] = lambda: NOW, **env: str) -> DriftCheckFunction:
        function_env("drift_check", **env)
        settings = DriftCheckSettings.from_environment()
        return DriftCheckFunction(DriftCheckEnvironment(settings, AwsClients(s3=aws, events=bus.events), clock=clock))

    return build


class Traffic:
    """Writes captured requests of the champion as predict's capture writer does, at chosen times."""

    def __init__(self, aws: Any, registry: S3ModelRegistry) -> None:
        self.aws = aws
        card = registry.get_card(CFG.model_name, 1)
        self.model = load_pipeline(registry.read_artifact(card, "pipeline"), card)
        self.data = read_dataset("breast_cancer")
        self.names = list(self.data.columns)

    def serve(
        self,
        rows: int,
        at: datetime,
        *,
        seed: int,
        scale: float = 1.0,
        version: int = 1,
        per_request: int = 25,
    ) -> list[tuple[str, int]]:
        """Capture ``rows`` rows drawn from the data set, ``SHIFTED`` features times ``scale``.

        Returns:
            ``(row id, true label)`` of every row, for outcomes.
        """
        rng = np.random.default_rng(seed)
        records, truth = [], []
        for k, start in enumerate(range(0, rows, per_request)):
            pick = rng.choice(self.data.n_rows, size=min(per_request, rows - start))
            columns = {n: self.data.columns[n][pick] * (scale if n in SHIFTED else 1.0) for n in self.names}
            proba = self.model.predict_proba(np.column_stack([columns[n] for n in self.names]))
            rid = f"req-{seed}-{k}"
            records.append(
                CaptureRecord(
                    request_id=rid,
                    timestamp=(at + timedelta(seconds=k)).timestamp(),
                    model_version=version,
                    columns=columns,
                    predictions=self.model.classes_[proba.argmax(axis=1)],
                    probabilities=proba,
                    n_rows=len(pick),
                )
            )
            truth += [(f"{rid}-{i}", int(y)) for i, y in enumerate(self.data.target[pick])]
        CaptureWriter(self.aws, CFG.data_bucket, CFG.capture_prefix, CFG.model_name).write(records)
        return truth


@pytest.fixture
def traffic(aws: Any, registry: S3ModelRegistry, champion: ModelCard) -> Traffic:
    return Traffic(aws, registry)


def s3_text(aws: Any, key: str) -> tuple[str, str]:
    obj = aws.get_object(Bucket=CFG.data_bucket, Key=key)
    return obj["Body"].read().decode(), obj["ContentType"]


@pytest.fixture
def emf(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The EMF records printed so far, as (metric name, value, dimensions) dicts."""

    def records() -> list[dict[str, Any]]:
        out = []
        for line in capsys.readouterr().out.splitlines():
            doc = json.loads(line) if line.startswith("{") else {}
            for directive in doc.get("_aws", {}).get("CloudWatchMetrics", []):
                # Powertools adds the service name as a dimension; the model's dimensions are what matter here.
                dims = {d: doc[d] for group in directive["Dimensions"] for d in group if d != "service"}
                for metric in directive["Metrics"]:
                    value = doc[metric["Name"]]
                    out.append(
                        {"name": metric["Name"], "value": value[0] if isinstance(value, list) else value, "dims": dims}
                    )
        return out

    yield records


# --------------------------------------------------------------------------- verdicts


def test_same_distribution_is_no_drift_and_publishes_nothing(drift_check, traffic, bus, aws):
    traffic.serve(400, NOW - timedelta(hours=3), seed=1)
    traffic.serve(300, NOW - timedelta(hours=2), seed=2, scale=2.0, version=2)  # another version's rows

    result = drift_check().handle(load_event("schedule"), None)

    assert result["verdict"] == "NO_DRIFT"
    assert result["drifted"] == []
    assert (result["rows_checked"], result["rows_other_versions"]) == (400, 300)
    assert result["events"] == [] and bus.received() == []
    assert result["performance"] is None
    report = json.loads(s3_text(aws, result["report_json"])[0])
    assert report["verdict"] == "NO_DRIFT"
    assert "Only rows served by model version 1 count" in report["scope"]
    assert len(report["drift"]["features"]) == 30


def test_shifted_features_are_drift_with_an_event_and_reports(drift_check, traffic, bus, lambda_context, emf):
    aws = traffic.aws
    traffic.serve(400, NOW - timedelta(hours=5), seed=3, scale=1.7)

    result = instrument(drift_check())(load_event("schedule"), lambda_context)

    assert result["verdict"] == "DRIFT"
    assert set(result["drifted"]) == set(SHIFTED)
    (delivered,) = bus.received()
    assert delivered["detail-type"] == "ModelDriftDetected"
    assert delivered["source"] == CFG.event_source
    detail = delivered["detail"]
    assert detail == result["events"][0]["detail"]
    assert (detail["model_name"], detail["model_version"]) == (CFG.model_name, 1)
    assert detail["verdict"] == "DRIFT"
    assert detail["drifted"] == result["drifted"]
    assert {f["name"] for f in detail["drifted_features"]} == set(SHIFTED)
    assert all(f["psi"] >= 0.2 and f["adjusted_p_value"] < 0.05 for f in detail["drifted_features"])
    assert detail["window"]["end"].startswith("2026-11-23T17:00:00")
    assert detail["window"]["hours"] == 24.0
    assert detail["report_html"] == f"s3://{CFG.data_bucket}/{result['report_html']}"

    assert result["report_html"] == f"reports/drift/{CFG.model_name}/20261123T170000Z.html"
    page, content_type = s3_text(aws, result["report_html"])
    assert content_type.startswith("text/html")
    assert 'class="banner DRIFT"' in page
    assert page.count("<svg") == 7  # the six worst features and the model output
    assert all(name in page for name in SHIFTED)
    assert "<script" not in page and "src=" not in page and "<link" not in page and "@import" not in page
    report = json.loads(s3_text(aws, result["report_json"])[0])
    assert set(report["drift"]["drifted"]) == set(SHIFTED)
    assert report["window"]["hours"] == 24.0

    metrics = emf()
    model = {"model_name": CFG.model_name, "model_version": "1"}
    assert {"name": "DriftVerdict", "value": 1.0, "dims": model} in metrics
    assert {"name": "DriftedFeatures", "value": 2.0, "dims": model} in metrics
    assert {"name": "RowsChecked", "value": 400.0, "dims": model} in metrics
    feature_psi = {m["dims"]["feature"]: m["value"] for m in metrics if m["name"] == "FeaturePSI"}
    assert len(feature_psi) == 30
    assert min(feature_psi[name] for name in SHIFTED) >= 0.2
    assert any(m["name"] == "PredictionPSI" for m in metrics)


def test_below_min_rows_is_insufficient_data_reported_not_healthy(drift_check, traffic, bus, lambda_context, emf):
    aws = traffic.aws
    traffic.serve(150, NOW - timedelta(hours=1), seed=4, scale=3.0)

    result = instrument(drift_check())(load_event("schedule"), lambda_context)

    assert result["verdict"] == "INSUFFICIENT_DATA"
    assert result["drifted"] == []
    assert result["rows_checked"] == 150
    assert result["events"] == [] and bus.received() == []
    report = json.loads(s3_text(aws, result["report_json"])[0])
    assert report["verdict"] == "INSUFFICIENT_DATA"
    assert "INSUFFICIENT DATA" in s3_text(aws, result["report_html"])[0]
    metrics = emf()
    assert {"name": "DriftVerdict", "value": -1.0, "dims": {"model_name": CFG.model_name, "model_version": "1"}} in (
        metrics
    )
    assert not any(m["name"] == "DriftedFeatures" for m in metrics)


def test_capture_older_than_the_window_is_ignored_unless_asked_for(drift_check, traffic, bus):
    traffic.serve(400, NOW - timedelta(hours=30), seed=5, scale=1.7)
    traffic.serve(250, NOW - timedelta(hours=4), seed=6)
    function = drift_check()

    default = function.handle(load_event("schedule"), None)
    wider = function.handle({"window_hours": 48}, None)

    assert (default["verdict"], default["rows_checked"]) == ("NO_DRIFT", 250)
    assert (wider["verdict"], wider["rows_checked"]) == ("DRIFT", 650)
    assert wider["window"]["hours"] == 48.0
    assert [e["detail-type"] for e in bus.received()] == ["ModelDriftDetected"]


def test_window_setting_and_explicit_bounds(drift_check, traffic):
    traffic.serve(300, NOW - timedelta(hours=3), seed=7)
    event = load_event("schedule")
    event["detail"] = {"start": "2026-11-23T13:00:00Z", "end": "2026-11-23T15:00:00Z"}

    two_hours = drift_check(WINDOW_HOURS="2").handle(load_event("schedule"), None)
    explicit = drift_check().handle(event, None)

    assert (two_hours["verdict"], two_hours["rows_checked"]) == ("INSUFFICIENT_DATA", 0)
    assert explicit["rows_checked"] == 300
    assert explicit["window"]["start"].startswith("2026-11-23T13:00:00")


# --------------------------------------------------------------------------- performance


def test_correct_outcomes_are_within_tolerance(drift_check, traffic, bus, aws):
    truth = traffic.serve(400, NOW - timedelta(hours=2), seed=8)
    S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).put_batch(CFG.model_name, truth)

    result = drift_check().handle(load_event("schedule"), None)

    performance = result["performance"]
    assert performance["status"] == "OK" and not result["performance_degraded"]
    assert performance["metric"] == "roc_auc"
    assert performance["labeled_rows"] == 400
    assert performance["live_value"] > 0.95
    assert bus.received() == []


def test_flipped_outcomes_through_predict_and_log_outcome_degrade_performance(
    drift_check, predict_function, outcome_function, bus, lambda_context
):
    data = read_dataset("breast_cancer")
    predict = predict_function()
    flipped = []
    for k in range(5):
        rows = np.arange(k * 60, (k + 1) * 60)
        event = with_body("predict_columns", {"columns": {n: c[rows].tolist() for n, c in data.columns.items()}})
        event["requestContext"]["requestId"] = f"drift-test-{k}"
        answer = response_json(predict.handle(event, lambda_context))
        flipped += [
            {"request_id": rid, "actual": 1 - int(y)}
            for rid, y in zip(answer["request_ids"], data.target[rows], strict=True)
        ]
    predict.env.capture.flush()
    logged = outcome_function().handle(with_body("log_outcome", {"outcomes": flipped}), lambda_context)
    assert logged["statusCode"] == 200

    result = drift_check(clock=lambda: datetime.now(UTC)).handle(load_event("schedule"), None)

    assert result["rows_checked"] == 300
    performance = result["performance"]
    assert (performance["status"], performance["metric"], performance["labeled_rows"]) == ("DEGRADED", "roc_auc", 300)
    assert performance["live_value"] < 0.1
    assert performance["relative_drop"] > 0.9
    delivered = [e for e in bus.received() if e["detail-type"] == "ModelPerformanceDegraded"]
    assert len(delivered) == 1
    assert delivered[0]["detail"]["metric"] == "roc_auc"
    assert delivered[0]["detail"]["labeled_rows"] == 300
    assert "ModelPerformanceDegraded" in [e["detail_type"] for e in result["events"]]


# --------------------------------------------------------------------------- edges


def test_two_checks_in_the_same_second_keep_both_reports(drift_check, traffic):
    traffic.serve(250, NOW - timedelta(hours=1), seed=9)
    function = drift_check()

    first = function.handle(load_event("schedule"), None)
    second = function.handle(load_event("schedule"), None)

    assert first["report_html"].endswith("20261123T170000Z.html")
    assert second["report_html"].endswith("20261123T170000Z-2.html")


def test_bad_events_and_missing_champion_are_errors(aws, bus, function_env):
    function_env("drift_check")
    function = DriftCheckFunction(
        DriftCheckEnvironment(
            DriftCheckSettings.from_environment(), AwsClients(s3=aws, events=bus.events), clock=lambda: NOW
        )
    )

    with pytest.raises(ValidationError) as bad:
        function.handle({"window_hours": -1}, None)
    assert [e.field for e in bad.value.errors] == ["window_hours"]
    with pytest.raises(ValidationError):
        function.handle({"start": "2026-11-23T18:00:00Z"}, None)
    with pytest.raises(ModelNotFoundError):
        function.handle(load_event("schedule"), None)


# --------------------------------------------------------------------------- corrupt records


def write_corrupt_records(aws: Any, at: datetime) -> dict[str, int]:
    """Corrupt capture lines, a capture object that is not gzip and corrupt outcome lines; how many of each."""
    partition = f"{CFG.capture_prefix}/{CFG.model_name}/dt={at:%Y-%m-%d}/hour={at:%H}/"
    lines = [
        b"{not json",
        b"[1, 2, 3]",
        json.dumps({"request_id": "r-x", "ts": at.timestamp()}).encode(),  # fields missing
        json.dumps(
            {
                "request_id": "r-y",
                "ts": at.timestamp(),
                "model_version": 1,
                "n": 2,
                "features": {"mean_radius": [1.0]},  # one value for two rows
                "predictions": [0, 1],
            }
        ).encode(),
        "\udcff".encode("utf-8", "surrogatepass"),  # not UTF-8
    ]
    aws.put_object(Bucket=CFG.data_bucket, Key=partition + "corrupt.jsonl.gz", Body=gzip.compress(b"\n".join(lines)))
    aws.put_object(Bucket=CFG.data_bucket, Key=partition + "truncated.jsonl.gz", Body=b"\x1f\x8b not gzip")
    outcome_key = f"{CFG.outcomes_prefix}/{CFG.model_name}/dt={at:%Y-%m-%d}/corrupt.jsonl"
    outcomes = [b"garbage", b'{"request_id": 7, "actual": 1, "received_at": "x"}', b'{"request_id": "r-1-0"}']
    aws.put_object(Bucket=CFG.data_bucket, Key=outcome_key, Body=b"\n".join(outcomes))
    return {"capture": len(lines) + 1, "outcomes": len(outcomes)}


def test_corrupt_capture_and_outcome_records_are_skipped_counted_and_reported(
    drift_check, traffic, aws, lambda_context, emf
):
    truth = traffic.serve(400, NOW - timedelta(hours=3), seed=1)
    S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix).put_batch(CFG.model_name, truth)
    corrupt = write_corrupt_records(aws, NOW - timedelta(hours=3))

    response = instrument(drift_check())(load_event("schedule"), lambda_context)

    assert response["verdict"] == "NO_DRIFT"
    assert response["rows_checked"] == 400  # every good record still counts
    assert response["performance"]["labeled_rows"] == 400
    assert response["records_skipped"] == corrupt == {"capture": 6, "outcomes": 3}
    report = json.loads(s3_text(aws, response["report_json"])[0])
    assert report["records_skipped"] == corrupt
    assert {"name": "RecordsSkipped", "value": 9.0, "dims": {"model_name": CFG.model_name, "model_version": "1"}} in [
        {**m, "value": float(m["value"])} for m in emf()
    ]
