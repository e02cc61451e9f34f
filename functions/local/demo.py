"""``mlops demo``: the local lifecycle end to end, over real HTTP, with a printed account of it."""

from __future__ import annotations

import csv
import gzip
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from functions.config import StageConfig
from functions.local.runtime import DATA_DIR, LocalRuntime

LOG_DIR = Path(".mlops")


class _Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", flush=True)


def http(method: str, url: str, body: Any | None = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    """One HTTP call; returns the status and the decoded JSON body (4xx/5xx included)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _load_rows(config: StageConfig) -> tuple[list[dict[str, float]], list[int]]:
    target = config.demo.training.target
    with (DATA_DIR / config.demo.file).open() as fh:
        records = list(csv.DictReader(fh))
    rows = [{k: float(v) for k, v in rec.items() if k != target} for rec in records]
    labels = [int(rec[target]) for rec in records]
    return rows, labels


def _send_traffic(api: str, rows: list[dict[str, float]], labels: list[int], n: int, clock: _Clock) -> dict[str, Any]:
    """Single rows, row batches and columnar batches; returns row id -> (label, prediction)."""
    served: dict[str, tuple[int, int]] = {}
    shown = 0
    i = 0
    requests = 0
    while i < n:
        size = min(1 if requests % 3 == 0 else 25, n - i)
        chunk, truth = rows[i : i + size], labels[i : i + size]
        if not chunk:
            break
        if size == 1:
            body: dict[str, Any] = {"features": chunk[0]}
        elif requests % 3 == 1:
            body = {"rows": chunk}
        else:
            body = {"columns": {k: [r[k] for r in chunk] for k in chunk[0]}}
        status, answer = http("POST", f"{api}/predict", body)
        if status != 200:
            raise RuntimeError(f"predict answered {status}: {answer}")
        for rid, label, pred in zip(answer["request_ids"], truth, answer["predictions"], strict=True):
            served[rid] = (label, pred)
        if shown < 3:
            p = answer["probabilities"][0]
            clock.say(
                f"  {answer['request_ids'][0]}: predicted {answer['predictions'][0]} "
                f"(p={max(p):.3f}) by v{answer['model_version']}; actual {truth[0]}"
            )
            shown += 1
        i += size
        requests += 1
    return {"served": served, "requests": requests}


def _show_rejections(api: str, row: dict[str, float], clock: _Clock) -> int:
    name = next(iter(row))
    cases = [
        ("missing feature", {"features": {k: v for k, v in row.items() if k != name}}),
        ("wrong type", {"features": {**row, name: "large"}}),
        ("NaN value", None),
        ("empty batch", {"rows": []}),
        ("1,001 rows", {"rows": [row] * 1001}),
    ]
    for label, body in cases:
        if body is None:
            raw = json.dumps({"features": {**row, name: float("nan")}}).encode()
            status, answer = http("POST", f"{api}/predict", raw=raw)
        else:
            status, answer = http("POST", f"{api}/predict", body)
        detail = answer["errors"][0] if answer.get("errors") else {}
        where = f"{detail.get('field')}" + (f" row {detail['row']}" if "row" in detail else "")
        clock.say(f"  {label:16} -> {status} {answer['code']}: {where}: {detail.get('reason')}")
    status, answer = http("POST", f"{api}/predict", raw=b'{"features": {')
    clock.say(f"  {'malformed JSON':16} -> {status} {answer['code']}: {answer['errors'][0]['reason']}")
    return len(cases) + 1


def _count_capture(runtime: LocalRuntime, config: StageConfig) -> tuple[int, int, set[str]]:
    s3 = runtime.s3
    objects, rows = 0, 0
    ids: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=config.data_bucket, Prefix=f"{config.capture_prefix}/{config.model_name}/"):
        for obj in page.get("Contents", []):
            objects += 1
            data = gzip.decompress(s3.get_object(Bucket=config.data_bucket, Key=obj["Key"])["Body"].read())
            for line in data.splitlines():
                rec = json.loads(line)
                rows += rec["n"]
                ids.update(f"{rec['request_id']}-{i}" for i in range(rec["n"]))
    return objects, rows, ids


def run_demo(config: StageConfig, rows: int = 200) -> int:
    """Start the local runtime, train, serve traffic and outcomes over HTTP, report, stop."""
    from functions.adapters.outcomes import S3OutcomeStore
    from functions.adapters.registry import S3ModelRegistry

    clock = _Clock()
    LOG_DIR.mkdir(exist_ok=True)
    log_path = LOG_DIR / "demo-logs.jsonl"
    clock.say("starting the local runtime: moto S3 on 127.0.0.1, then the HTTP API")
    with log_path.open("w") as logs, LocalRuntime(config, log_stream=logs, progress=clock.say) as runtime:
        api = runtime.api_url
        clock.say(f"API listening on {api}; moto at {runtime.moto.endpoint_url}; logs in {log_path}")
        registry = S3ModelRegistry(runtime.s3, config.registry_bucket)
        aliases = registry.get_aliases(config.model_name)
        card = registry.get_card(config.model_name, aliases["champion"])
        clock.say(
            f"registry: {config.model_name} v{card.version} is champion "
            f"({card.estimator.kind}, {card.primary_metric}={card.metrics[card.primary_metric]:.4f}, "
            f"sha256 {card.artifact_sha256[:12]})"
        )

        status, health = http("GET", f"{api}/health")
        clock.say(f"GET /health -> {status} {health['status']}, serving v{health.get('model_version')}")
        status, model = http("GET", f"{api}/model")
        clock.say(
            f"GET /model -> {status}: {len(model['features'])} features, task {model['task']}, "
            f"classes {model['classes']}"
        )

        data_rows, labels = _load_rows(config)
        clock.say(f"sending {rows} rows of traffic (single rows, row batches, columnar batches)")
        traffic = _send_traffic(api, data_rows, labels, min(rows, len(data_rows)), clock)
        served: dict[str, tuple[int, int]] = traffic["served"]
        correct = sum(1 for label, pred in served.values() if label == pred)
        clock.say(
            f"served {len(served)} rows in {traffic['requests']} requests; "
            f"{correct}/{len(served)} predictions match the data set's labels"
        )

        extreme = {**data_rows[0], "mean_radius": 45.0}
        status, answer = http("POST", f"{api}/predict", {"features": extreme})
        flag = answer["out_of_range"][0]
        clock.say(
            f"out-of-range input is served but flagged: {status}, {flag['field']}={flag['value']} "
            f"outside [{flag['minimum']}, {flag['maximum']}]"
        )

        clock.say("bad requests get a 4xx naming the field and the reason:")
        rejected = _show_rejections(api, data_rows[0], clock)

        outcomes = [{"request_id": rid, "actual": label} for rid, (label, _) in served.items()]
        accepted = 0
        for start in range(0, len(outcomes), 100):
            status, answer = http("POST", f"{api}/outcomes", {"outcomes": outcomes[start : start + 100]})
            accepted += answer["accepted"]
        status, again = http("POST", f"{api}/outcomes", {"outcomes": outcomes[:100]})
        clock.say(
            f"POST /outcomes: {accepted} outcomes accepted; re-sending a batch -> {status}, "
            f"duplicate_batch={again['duplicate_batch']}"
        )

        runtime.sync_cloudwatch()
        objects, captured_rows, captured_ids = _count_capture(runtime, config)
        stored = S3OutcomeStore(runtime.s3, config.data_bucket, config.outcomes_prefix).read_all(config.model_name)
        joined = len(captured_ids & stored.keys())
        clock.say(
            f"capture: {captured_rows} rows in {objects} object(s) under "
            f"s3://{config.data_bucket}/{config.capture_prefix}/{config.model_name}/dt=.../hour=.../"
        )
        clock.say(
            f"outcomes: {len(stored)} distinct request ids stored (the re-sent batch counted once); "
            f"{joined} join to captured rows"
        )
        m = runtime.metrics
        clock.say(
            f"metrics (EMF): Predictions={m.total('Predictions'):.0f} PredictedRows={m.total('PredictedRows'):.0f} "
            f"OutOfRangeValues={m.total('OutOfRangeValues'):.0f} RejectedRequests={m.total('RejectedRequests'):.0f} "
            f"OutcomesAccepted={m.total('OutcomesAccepted'):.0f} CaptureFailures={m.total('CaptureFailures'):.0f}"
        )
        ok = joined == len(served) and len(stored) == len(served) and rejected == m.total("RejectedRequests")
    clock.say("stopped: API closed, moto stopped, nothing left running")
    if not ok:
        print("demo: the counts above do not add up; see the logs", flush=True)
        return 1
    return 0
