"""The first act of ``mlops demo``: the serving contract over real HTTP (health, answers, flags, errors, outcomes)."""

from __future__ import annotations

import csv
import gzip
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from functions.config import StageConfig
from functions.local.runtime import DATA_DIR, LocalRuntime

LOG_DIR = Path(".mlops")


class Clock:
    """Hands progress lines to ``say`` (the lifecycle's timeline)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self.say = say


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


def _send_traffic(api: str, rows: list[dict[str, float]], labels: list[int], n: int, clock: Clock) -> dict[str, Any]:
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


def _show_rejections(api: str, row: dict[str, float], clock: Clock) -> int:
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


def foundation_act(runtime: LocalRuntime, say: Callable[[str], None]) -> dict[str, bool]:
    """The serving contract over HTTP: health, the model card, answers, flags, rejections, outcomes, capture."""
    from functions.adapters.outcomes import S3OutcomeStore

    config = runtime.config
    api = runtime.api_url
    status, health = http("GET", f"{api}/health")
    say(f"GET /health -> {status} {health['status']}, serving v{health.get('model_version')}")
    status, model = http("GET", f"{api}/model")
    say(f"GET /model -> {status}: {len(model['features'])} features, task {model['task']}, classes {model['classes']}")
    data_rows, labels = _load_rows(config)
    traffic = _send_traffic(api, data_rows, labels, 100, Clock(say))
    served: dict[str, tuple[int, int]] = traffic["served"]
    correct = sum(1 for label, pred in served.values() if label == pred)
    say(
        f"served {len(served)} rows in {traffic['requests']} requests (single rows, row batches, columnar batches); "
        f"{correct}/{len(served)} match the data set's labels"
    )
    flagged_status, answer = http("POST", f"{api}/predict", {"features": {**data_rows[0], "mean_radius": 45.0}})
    flag = answer["out_of_range"][0]
    say(
        f"out-of-range input is served but flagged: {flagged_status}, {flag['field']}={flag['value']} "
        f"outside [{flag['minimum']}, {flag['maximum']}]"
    )
    say("bad requests get a 4xx naming the field and the reason:")
    _show_rejections(api, data_rows[0], Clock(say))
    outcomes = [{"request_id": rid, "actual": label} for rid, (label, _) in served.items()]
    status, first = http("POST", f"{api}/outcomes", {"outcomes": outcomes})
    status, again = http("POST", f"{api}/outcomes", {"outcomes": outcomes})
    duplicate = again["duplicate_batch"]
    say(f"POST /outcomes: {first['accepted']} accepted; sent again -> {status}, duplicate_batch={duplicate}")
    runtime.sync_cloudwatch()
    objects, captured_rows, captured_ids = _count_capture(runtime, config)
    stored = S3OutcomeStore(runtime.s3, config.data_bucket, config.outcomes_prefix).read_all(config.model_name)
    joined = len(captured_ids & set(outcomes_ids(outcomes)))
    say(
        f"capture: {captured_rows} rows in {objects} object(s) under s3://{config.data_bucket}/"
        f"{config.capture_prefix}/{config.model_name}/dt=.../hour=.../; {joined} of them have outcomes"
    )
    return {
        # every traffic request answered 200 (_send_traffic raises otherwise), and so did the flagged one
        "predictions served and flagged": flagged_status == 200 and flag["field"] == "mean_radius",
        "outcomes stored once and joined to capture": (
            first["accepted"] == len(outcomes)
            and status == 200
            and duplicate is True  # the same batch again stores nothing new
            and joined == len(served)
            and len(stored) >= len(served)
        ),
    }


def outcomes_ids(outcomes: list[dict[str, Any]]) -> list[str]:
    return [o["request_id"] for o in outcomes]
