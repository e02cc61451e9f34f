"""The closed loop, acted out on the local runtime: drift, retrain, canary, promotion, and a rollback."""

from __future__ import annotations

import csv
import io
import random
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from functions.config import StageConfig
from functions.local.demo import LOG_DIR, http
from functions.local.observability import MetricPoint
from functions.local.runtime import DATA_DIR, LocalRuntime, LocalScheduler

# The drift we inject: tumours that measure larger than anything in the training distribution.
DRIFT = {"mean_radius": 1.35, "mean_perimeter": 1.35, "mean_area": 1.8, "worst_area": 1.8, "worst_radius": 1.35}


def demo_config(config: StageConfig) -> StageConfig:
    """The stage's configuration with the clock sped up: seconds of bake time instead of minutes."""
    return config.model_copy(
        update={
            "rollout": config.rollout.model_copy(update={"bake_seconds": 1.0, "min_requests": 20}),
            "retrain": config.retrain.model_copy(update={"cooldown_seconds": 0}),
            "drift": config.drift.model_copy(update={"window_hours": 1.0}),
        }
    )


class Timeline:
    """Prints what happens, with the time since the demo began, and keeps it for the summary."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.entries: list[tuple[float, str]] = []

    def say(self, message: str, keep: bool = False) -> None:
        at = time.monotonic() - self.start
        if keep:
            self.entries.append((at, message))
        print(f"[{at:6.1f}s] {message}", flush=True)


class Traffic:
    """Rows of the real data set sent to POST /predict, with their true labels sent to POST /outcomes."""

    def __init__(self, config: StageConfig, seed: int = 7) -> None:
        target = config.demo.training.target
        with (DATA_DIR / config.demo.file).open() as fh:
            records = list(csv.DictReader(fh))
        self.rows = [{k: float(v) for k, v in r.items() if k != target} for r in records]
        self.labels = [int(r[target]) for r in records]
        self.rng = random.Random(seed)

    def send(self, api: str, n: int, drift: dict[str, float] | None = None, outcomes: bool = True) -> dict[str, int]:
        """``n`` single-row requests (so the canary sees many requests); returns requests per model version."""
        by_version: dict[str, int] = {}
        truths: list[dict[str, Any]] = []
        for _ in range(n):
            i = self.rng.randrange(len(self.rows))
            row = dict(self.rows[i])
            for name, factor in (drift or {}).items():
                row[name] *= factor
            status, answer = http("POST", f"{api}/predict", {"features": row})
            if status != 200:
                raise RuntimeError(f"predict answered {status}: {answer}")
            version = str(answer["model_version"])
            by_version[version] = by_version.get(version, 0) + 1
            truths.append({"request_id": answer["request_ids"][0], "actual": self.labels[i]})
        if outcomes:
            for start in range(0, len(truths), 500):
                status, answer = http("POST", f"{api}/outcomes", {"outcomes": truths[start : start + 500]})
                if status != 200:
                    raise RuntimeError(f"outcomes answered {status}: {answer}")
        return by_version


def _split(by_version: dict[str, int]) -> str:
    total = sum(by_version.values()) or 1
    return ", ".join(f"v{v}: {n} ({n / total:.0%})" for v, n in sorted(by_version.items()))


def _flipped_dataset(config: StageConfig) -> bytes:
    """The demo data set with every label flipped: a candidate trained on it predicts the opposite."""
    target = config.demo.training.target
    with (DATA_DIR / config.demo.file).open() as fh:
        reader = csv.DictReader(fh)
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        for record in reader:
            record[target] = str(1 - int(record[target]))
            writer.writerow(record)
    return out.getvalue().encode()


def _canary(
    runtime: LocalRuntime, scheduler: LocalScheduler, traffic: Traffic, timeline: Timeline, drift: dict[str, float]
) -> dict[str, Any]:
    """Tick the rollout controller, sending traffic between ticks, until the canary ends."""
    config = runtime.config
    result: dict[str, Any] = {}
    for _ in range(12):
        result = scheduler.run("rollout")
        state = result["state"]
        if result["action"] in ("start", "advance"):
            timeline.say(
                f"rollout: {result['action']} -> {state['weight']:.0%} of traffic to "
                f"v{state['challenger_version']} (Lambda version {state['canary_function_version']})",
                True,
            )
        elif result["action"] in ("promote", "rollback"):
            timeline.say(f"rollout: {result['action']}: {result['reason']}", True)
            return result
        time.sleep(config.rollout.bake_seconds)
        split = traffic.send(runtime.api_url, 260, drift)
        timeline.say(f"  traffic: 260 requests served by {_split(split)}")
    return result


class Lifecycle:
    """The acts of the demo, each checking that it did what it should."""

    def __init__(self, runtime: LocalRuntime, timeline: Timeline, seed: int) -> None:
        from functions.adapters.registry import S3ModelRegistry

        self.runtime = runtime
        self.config = runtime.config
        self.timeline = timeline
        self.scheduler = LocalScheduler(runtime)
        self.registry = S3ModelRegistry(runtime.s3, self.config.registry_bucket)
        self.name = self.config.model_name
        self.traffic = Traffic(self.config, seed)
        self.checks: dict[str, bool] = {}

    def say(self, message: str) -> None:
        self.timeline.say(message, keep=True)

    def serving(self) -> None:
        from functions.local.demo import foundation_act

        champion = self.registry.get_card(self.name, self.registry.resolve(self.name, "champion"))
        self.say(
            f"v{champion.version} trained and serving ({champion.estimator.kind}, "
            f"{champion.primary_metric}={champion.metrics[champion.primary_metric]:.4f}) at {self.runtime.api_url}"
        )
        self.checks.update(foundation_act(self.runtime, self.timeline.say))

    def drift(self) -> None:
        split = self.traffic.send(self.runtime.api_url, 300)
        self.say(f"traffic with outcomes: 300 requests, {_split(split)}")
        result = self.scheduler.run("drift_check")
        self.say(f"drift-check on that traffic: {result['verdict']}")
        self.checks["no drift on normal traffic"] = result["verdict"] == "NO_DRIFT"
        factors = ", ".join(f"{k} x{v}" for k, v in DRIFT.items())
        self.traffic.send(self.runtime.api_url, 600, DRIFT)
        self.say(f"drift injected ({factors}): 600 requests with outcomes")
        result = self.scheduler.run("drift_check")
        drifted = result.get("drifted", [])
        self.say(f"drift-check: {result['verdict']}; drifted features: {', '.join(drifted) or 'none'}")
        self.checks["drift detected, naming the drifted features"] = result["verdict"] == "DRIFT" and bool(
            set(drifted) & set(DRIFT)
        )
        report = _save_report(self.runtime, result)
        if report:
            self.say(f"drift report (HTML): {report}")

    def retrain_and_promote(self) -> None:
        challenger = self.registry.get_aliases(self.name).get("challenger")
        self.say(
            f"retrain (on the drift event) registered v{challenger} as challenger"
            if challenger
            else "retrain registered no challenger"
        )
        self.checks["retrain registered a challenger"] = challenger is not None
        if challenger is None:
            return
        result = _canary(self.runtime, self.scheduler, self.traffic, self.timeline, DRIFT)
        state = result.get("state", {})
        # The stages the state recorded for this canary, not only where the alias ended.
        weights = [e["weight"] for e in state.get("history", []) if e.get("weight") is not None]
        stepped = weights[-3:] == [0.1, 0.5, 1.0] and state.get("challenger_version") == challenger
        promoted = self.registry.get_aliases(self.name).get("champion") == challenger
        self.say(f"v{challenger} is champion" if promoted else f"v{challenger} was not promoted")
        self.checks["challenger promoted through 10% -> 50% -> 100%"] = (
            promoted and stepped and result.get("action") == "promote" and state.get("status") == "promoted"
        )

    def bad_candidate(self) -> None:
        from functions.adapters.datasets import S3DatasetStore
        from functions.adapters.rollout_state import S3RolloutStore
        from functions.services.training import train_and_register

        config = self.config
        datasets = S3DatasetStore(self.runtime.s3, config.data_bucket, config.datasets_prefix)
        uri = datasets.upload("breast_cancer_flipped.csv", _flipped_dataset(config))
        champion = self.registry.resolve(self.name, "champion")
        bad = train_and_register(
            self.registry,
            datasets,
            model_name=self.name,
            dataset_uri=uri,
            spec=config.demo.training,
            parent_version=champion,
            description="deliberately bad: labels flipped",
        )
        self.registry.set_aliases(self.name, {"challenger": bad.version}, reason="demo: a bad candidate")
        S3RolloutStore(self.runtime.s3, config.registry_bucket).request(self.name, bad.version, champion, "demo")
        self.say(f"bad candidate v{bad.version} (trained on flipped labels) sent to canary")
        result = _canary(self.runtime, self.scheduler, self.traffic, self.timeline, DRIFT)
        rollbacks = result.get("state", {}).get("rollbacks", [])
        if rollbacks:
            rb = rollbacks[-1]
            detect = datetime.fromisoformat(rb["detected_at"]) - datetime.fromisoformat(rb["canary_started_at"])
            revert = datetime.fromisoformat(rb["reverted_at"]) - datetime.fromisoformat(rb["detected_at"])
            self.say(
                f"v{bad.version} rolled back at {rb['weight_at_detection']:.0%}: time to detect "
                f"{detect.total_seconds():.1f} s, time to revert {revert.total_seconds() * 1000:.0f} ms"
            )
        final = self.registry.get_aliases(self.name)
        last = rollbacks[-1] if rollbacks else {}
        # Rolled back by the controller, for the bad candidate, because its answers were worse on labelled traffic.
        self.checks["bad candidate rolled back automatically"] = (
            result.get("action") == "rollback"
            and last.get("challenger_version") == bad.version
            and "on labelled traffic" in last.get("reason", "")
            and final.get("champion") == champion
            and "challenger" not in final
        )
        self.say(f"champion is still v{final.get('champion')}; aliases {final}")


def run_lifecycle(config: StageConfig, seed: int = 7, emitted: list[MetricPoint] | None = None) -> dict[str, bool]:
    """The whole loop on the embedded default; returns each check and whether it held.

    With ``emitted``, every metric value the handlers emitted (as EMF) is appended to it.
    """
    timeline = Timeline()
    LOG_DIR.mkdir(exist_ok=True)
    with (
        (LOG_DIR / "demo-logs.jsonl").open("w") as logs,
        LocalRuntime(config, log_stream=logs, progress=timeline.say, seed=seed) as runtime,
    ):
        acts = Lifecycle(runtime, timeline, seed)
        acts.serving()
        acts.drift()
        acts.retrain_and_promote()
        acts.bad_candidate()
        if emitted is not None:
            emitted.extend(runtime.metrics.points)
    timeline.say("stopped: API closed, moto stopped, nothing left running")
    print("\nTimeline")
    for at, message in timeline.entries:
        print(f"  {at:6.1f}s  {message}")
    print("\nChecks")
    for what, ok in acts.checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return acts.checks


def _save_report(runtime: LocalRuntime, result: dict[str, Any]) -> str | None:
    key = result.get("report_html")
    if not key:
        return None
    body = runtime.s3.get_object(Bucket=runtime.config.data_bucket, Key=key)["Body"].read()
    path = Path(LOG_DIR) / "drift-report.html"
    path.write_bytes(body)
    return f"{path} (also s3://{runtime.config.data_bucket}/{key})"
