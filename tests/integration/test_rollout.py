"""The rollout controller under moto: real Lambda versions and alias weights, requests routed by the local
FunctionHost, real capture and EMF metrics forwarded to CloudWatch, alarms judged as the local runtime does."""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
import math
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import boto3
import pytest

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.lambda_alias import PINNED_VARIABLE, AliasRouting, DeploymentError, LambdaAliasDeployer
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.bootstrap import AwsClients
from functions.config import function_environment
from functions.domain.card import EstimatorSpec, ModelCard
from functions.domain.rollout import RolloutPolicy, RolloutState
from functions.errors import ConcurrentUpdateError, StorageError
from functions.handlers.rollout import RolloutFunction
from functions.local import host as local_host
from functions.local.cli import print_status
from functions.local.events import api_gateway_event
from functions.local.host import FunctionHost
from functions.local.observability import LocalMetrics, OutputRouter
from functions.local.runtime import ensure_resources
from functions.services import rollout
from functions.services.training import train_and_register
from functions.settings import RolloutSettings
from tests.conftest import CFG, DATA
from tests.graphs import canned_nan_graph, register_graph

NAME = CFG.model_name
MIN_REQUESTS = 3
REQUESTS = 80  # at 10%, 3 or more reach the challenger with probability 0.99
ROWS_PER_REQUEST = 10
CSV_TEXT = (DATA / CFG.demo.file).read_text()
FEATURE_ROWS = [
    {k: float(v) for k, v in row.items() if k != CFG.demo.training.target}
    for row in csv.DictReader(io.StringIO(CSV_TEXT))
]
# A challenger of the champion's family, slightly less regularised: as good, and with the same output shape.
GOOD_CHALLENGER = EstimatorSpec(kind="logistic_regression", params={"C": 0.5})
ERRORS_ALARM = f"{CFG.predict_function_name}-canary-{NAME}-v2-errors"


class SteppedClock:
    """The controller's clock, moved by the tests: each tick comes after all the traffic so far.

    Metric points and capture records carry real timestamps, and CloudWatch (moto) truncates query
    bounds to whole seconds. So a tick happens on the whole second after the last request (and at
    least a second after the previous tick), and requests wait for the clock when a tick ran ahead.
    """

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self._last_request: datetime | None = None
        self._ticked = False

    def __call__(self) -> datetime:
        return self.now

    def step(self) -> datetime:
        moments = [datetime.now(UTC)]
        if self._last_request is not None:
            moments.append(self._last_request.replace(microsecond=0) + timedelta(seconds=1))
        if self._ticked:
            moments.append(self.now.replace(microsecond=0) + timedelta(seconds=1))
        self.now, self._ticked = max(moments), True
        return self.now

    def wait_for_now(self) -> None:
        """Let real time catch up with the clock, so that requests sent next belong to the current stage."""
        ahead = (self.now - datetime.now(UTC)).total_seconds()
        if ahead > 0:
            time.sleep(ahead + 0.002)

    def requests_sent(self) -> None:
        self._last_request = datetime.now(UTC)


@dataclass
class Traffic:
    served: Counter[str]  # Lambda version -> requests
    statuses: Counter[int]
    model_versions: Counter[int]  # model version named in 200 responses

    @property
    def total(self) -> int:
        return sum(self.served.values())


class ControllerCrash(RuntimeError):
    """The controller's process died."""


class CrashingStore(S3RolloutStore):
    """The state store of a controller that dies just before, or just after, its n-th write of the state."""

    crash: tuple[int, str] | None = None  # (n, "before" | "after")

    def save(self, state: RolloutState, etag: str | None) -> str:
        if self.crash is None:
            return super().save(state, etag)
        n, when = self.crash
        if n > 1:
            self.crash = (n - 1, when)
            return super().save(state, etag)
        self.crash = None
        if when == "before":
            raise ControllerCrash("died before writing the rollout state")
        super().save(state, etag)
        raise ControllerCrash("died right after writing the rollout state")


# A step is two writes around its alias change: the step (1), then "done" (2).
CRASH_POINTS = [
    pytest.param((1, "before"), id="before-writing-the-step"),
    pytest.param((1, "after"), id="after-writing-the-step-before-the-alias"),
    pytest.param((2, "before"), id="after-the-alias-before-marking-done"),
]


@dataclass
class World:
    """The local stage in moto: champion v1 serving through ``live``, a rollout controller, a client."""

    clients: AwsClients
    registry: S3ModelRegistry
    datasets: S3DatasetStore
    store: CrashingStore
    ports: rollout.RolloutPorts
    policy: RolloutPolicy
    host: FunctionHost
    emitted: LocalMetrics
    clock: SteppedClock
    rng: random.Random

    def send(self, requests: int) -> Traffic:
        """POST /predict ``requests`` times through the alias, each with random rows of the data set."""
        traffic = Traffic(Counter(), Counter(), Counter())
        self.clock.wait_for_now()
        # The handlers print EMF to stdout as on Lambda; route it into the metrics as the local runtime does
        # (per call: pytest puts its own capture back on sys.stdout between a fixture and the test).
        with contextlib.redirect_stdout(OutputRouter(sys.stdout, self.emitted, None)):
            for _ in range(requests):
                self._send_one(traffic)
        self.clock.requests_sent()
        return traffic

    def _send_one(self, traffic: Traffic) -> None:
        body = json.dumps({"rows": self.rng.sample(FEATURE_ROWS, ROWS_PER_REQUEST)})
        before = dict(self.host.served_by_version)
        response = self.host.invoke(
            "predict", api_gateway_event("POST", "/predict", body, headers={"Content-Type": "application/json"})
        )
        served = next(v for v, n in self.host.served_by_version.items() if n != before.get(v, 0))
        traffic.served[served] += 1
        traffic.statuses[response["statusCode"]] += 1
        if response["statusCode"] == 200:
            traffic.model_versions[json.loads(response["body"])["model_version"]] += 1

    def sync(self) -> None:
        """What AWS does between two ticks: capture written, EMF turned into metrics, alarms judged."""
        self.host.flush()
        self.emitted.forward(self.clients.cloudwatch)
        self.emitted.evaluate_alarms(self.clients.cloudwatch)

    def tick(self) -> rollout.TickResult:
        """The next scheduled tick, a moment after the traffic so far."""
        self.sync()
        self.clock.step()
        return rollout.tick(self.ports, NAME, self.policy)

    def routing(self) -> AliasRouting:
        return self.ports.deployer.routing()

    def state(self) -> RolloutState:
        return self.ports.store.load(NAME)[0]

    def lambda_versions(self) -> list[str]:
        versions = self.clients.lambda_.list_versions_by_function(FunctionName=CFG.predict_function_name)["Versions"]
        return sorted(v["Version"] for v in versions if v["Version"] != "$LATEST")

    def pinned_model(self, function_version: str) -> str | None:
        config = self.clients.lambda_.get_function_configuration(
            FunctionName=CFG.predict_function_name, Qualifier=function_version
        )
        return config.get("Environment", {}).get("Variables", {}).get(PINNED_VARIABLE)

    def alarms(self) -> list[str]:
        return [a["AlarmName"] for a in self.clients.cloudwatch.describe_alarms()["MetricAlarms"]]

    # -- challengers ---------------------------------------------------------------------------------
    def train_challenger(self, estimator: EstimatorSpec = GOOD_CHALLENGER, csv_text: str = CSV_TEXT) -> ModelCard:
        """Train v2 from a CSV in the data bucket, make it the challenger and ask for its rollout."""
        uri = self.datasets.upload("challenger.csv", csv_text.encode())
        spec = CFG.demo.training.model_copy(update={"estimator": estimator})
        card = train_and_register(
            self.registry, self.datasets, model_name=NAME, dataset_uri=uri, spec=spec, parent_version=1
        )
        return self.propose(card)

    def register_challenger(self, graph: bytes, canned: list[float] | None = None, **card_changes: Any) -> ModelCard:
        """Register ``graph`` as v2 with the champion's card (and ``card_changes``), as challenger."""
        champion = self.registry.get_card(NAME, 1)
        card = register_graph(self.registry, champion, graph, canned, parent_version=1, **card_changes)
        return self.propose(card)

    def propose(self, card: ModelCard) -> ModelCard:
        self.registry.set_aliases(NAME, {"challenger": card.version}, reason="test challenger")
        assert self.store.request(NAME, card.version, 1, "challenger registered")
        return card


def flipped_labels(text: str) -> str:
    """The data set with every label inverted: a model trained on it is confidently wrong."""
    rows = list(csv.DictReader(io.StringIO(text)))
    target = CFG.demo.training.target
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, target: str(1 - int(float(row[target])))})
    return out.getvalue()


@pytest.fixture
def world(aws: Any, boto_session: boto3.session.Session, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clients = AwsClients(s3=aws, **{s: boto_session.client(s) for s in ("lambda", "cloudwatch", "events", "iam")})
    ensure_resources(clients, CFG)
    registry = S3ModelRegistry(aws, CFG.registry_bucket)
    datasets = S3DatasetStore(aws, CFG.data_bucket, CFG.datasets_prefix)
    uri = datasets.upload(CFG.demo.file, CSV_TEXT.encode())
    train_and_register(registry, datasets, model_name=NAME, dataset_uri=uri, spec=CFG.demo.training)
    assert registry.get_aliases(NAME) == {"champion": 1}

    values = {k.lower(): v for k, v in function_environment(CFG, "rollout").items()}
    settings = RolloutSettings.model_validate({**values, "bake_seconds": "0", "min_requests": str(MIN_REQUESTS)})
    clock = SteppedClock()
    controller = RolloutFunction(settings, clients, CFG.metrics_namespace)  # the handler's own wiring
    ports = controller.ports
    store = CrashingStore(aws, CFG.registry_bucket)
    ports.store, ports.clock = store, clock

    # Route every request by the alias as it is now, not as it was half a second ago.
    monkeypatch.setattr(local_host, "ROUTING_CACHE_SECONDS", 0.0)
    emitted = LocalMetrics()
    host = FunctionHost(CFG, clients, seed=7)
    try:
        yield World(
            clients, registry, datasets, store, ports, controller.policy, host, emitted, clock, random.Random(11)
        )
    finally:
        host.flush()


def assert_binomial(count: int, n: int, p: float) -> None:
    """``count`` of ``n`` draws is within 3.5 standard deviations of ``n * p``."""
    assert abs(count - n * p) <= 3.5 * math.sqrt(n * p * (1 - p)), f"{count}/{n} is not about {p:.0%}"


def canary_at_half(world: World) -> None:
    """Start the canary of v2, pass the 10% stage with traffic, advance to 50%."""
    started = world.tick()
    assert (started.action, started.state.weight) == ("start", 0.1)
    world.send(REQUESTS)
    advanced = world.tick()
    assert (advanced.action, advanced.state.weight) == ("advance", 0.5), advanced.reason


# -- the happy path ------------------------------------------------------------------------------------
def test_a_good_challenger_starts_at_ten_percent_and_advances_to_fifty(world: World) -> None:
    world.train_challenger()
    assert world.state().status == "pending"

    started = world.tick()

    routing = world.routing()
    assert (started.action, started.state.status) == ("start", "canary")
    assert (routing.stable_version, routing.weights) == ("1", {"2": 0.1})
    assert world.lambda_versions() == ["1", "2"]
    assert (world.pinned_model("1"), world.pinned_model("2")) == (None, "2")
    assert sorted(world.alarms()) == [ERRORS_ALARM, ERRORS_ALARM.replace("-errors", "-p99-latency")]

    at_tenth = world.send(200)

    assert at_tenth.statuses == Counter({200: 200})
    assert_binomial(at_tenth.served["2"], 200, 0.1)
    assert at_tenth.model_versions == Counter({1: at_tenth.served["1"], 2: at_tenth.served["2"]})

    advanced = world.tick()

    assert (advanced.action, advanced.reason) == ("advance", "stage passed")
    assert world.routing().weights == {"2": 0.5}
    state = world.state()
    assert (state.status, state.stage_index, state.weight) == ("canary", 1, 0.5)
    assert [e.weight for e in state.history if e.weight is not None] == [0.1, 0.5]

    at_half = world.send(60)

    assert_binomial(at_half.served["2"], 60, 0.5)


def test_corrupt_capture_and_outcome_records_are_skipped_and_counted_and_the_canary_goes_on(world: World) -> None:
    world.train_challenger()
    world.tick()
    world.send(200)
    now = world.clock()
    s3, data = world.clients.s3, CFG.data_bucket
    partition = f"{CFG.capture_prefix}/{CFG.model_name}/dt={now:%Y-%m-%d}/hour={now:%H}/"
    s3.put_object(Bucket=data, Key=partition + "bad.jsonl.gz", Body=gzip.compress(b"{oops\n"))
    s3.put_object(Bucket=data, Key=f"{CFG.outcomes_prefix}/{CFG.model_name}/dt={now:%Y-%m-%d}/x.jsonl", Body=b"[]")

    advanced = world.tick()

    assert (advanced.action, advanced.reason) == ("advance", "stage passed")
    assert advanced.records_skipped == {"capture": 1, "outcomes": 1}
    assert advanced.as_dict()["records_skipped"] == {"capture": 1, "outcomes": 1}


def test_a_new_stage_waits_for_its_own_traffic(world: World) -> None:
    world.train_challenger()
    canary_at_half(world)

    held = world.tick()

    assert (held.action, held.reason) == ("hold", f"waiting for traffic: 0/{MIN_REQUESTS} challenger requests")
    assert world.routing().weights == {"2": 0.5}


def test_passing_the_fifty_percent_stage_promotes_the_challenger(world: World) -> None:
    world.train_challenger()
    canary_at_half(world)
    world.send(40)

    promoted = world.tick()

    assert (promoted.action, promoted.reason) == ("promote", "all stages passed")
    routing = world.routing()
    assert (routing.stable_version, routing.weights) == ("2", {})
    assert world.pinned_model(routing.stable_version) == "2"
    assert world.lambda_versions() == ["1", "2"]
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    status = world.registry.get_status(NAME, 2)
    assert status is not None and status["status"] == "champion"
    assert world.alarms() == []
    state = world.state()
    assert (state.status, state.weight, state.rollbacks) == ("promoted", 1.0, [])
    assert [e.weight for e in state.history if e.weight is not None] == [0.1, 0.5, 1.0]
    # Each judged stage's figures are stored beside the limits they were judged by.
    first, second = state.stage_figures
    assert (first.stage, first.weight, second.stage, second.weight) == (1, 0.1, 2, 0.5)
    assert first.outcome.startswith("passed") and second.outcome.startswith("passed, promoted")
    assert first.requests >= MIN_REQUESTS and second.requests >= MIN_REQUESTS
    assert first.error_rate == 0.0 and first.alarms_in_alarm == []
    assert first.prediction_psi is not None and first.prediction_psi < first.limits["max_prediction_psi"]
    assert "error rate 0.00% (limit 2%)" in first.describe() and "prediction PSI" in first.describe()
    # moto computes no percentile: the figure says so and bounds p99 by the stage's largest latency.
    assert first.p99_latency_ms is None and first.max_latency_ms is not None and first.max_latency_ms > 0
    assert first.limits["max_p99_latency_ms"] == world.ports.max_p99_latency_ms
    assert f"at most the max {first.max_latency_ms:.1f} ms" in first.describe()
    with contextlib.redirect_stdout(io.StringIO()) as shown:
        print_status(CFG, SimpleNamespace(ports=world.ports, policy=world.policy))
    assert "rollout   promoted: challenger v2\n" in shown.getvalue() and "stage 2/3" not in shown.getvalue()
    assert "  stage 1 (10%) passed" in shown.getvalue() and "  stage 2 (50%) passed, promoted" in shown.getvalue()

    after = world.send(30)
    assert (after.served, after.model_versions) == (Counter({"2": 30}), Counter({2: 30}))
    assert world.tick().action == "none"
    assert world.state() == state


# -- bad candidates are rolled back ------------------------------------------------------------------------
def test_a_challenger_trained_on_flipped_labels_is_rolled_back_on_its_prediction_distribution(world: World) -> None:
    world.train_challenger(csv_text=flipped_labels(CSV_TEXT))
    started = world.tick()
    world.send(REQUESTS)

    rolled_back = world.tick()

    assert rolled_back.action == "rollback"
    assert rolled_back.reason.startswith("prediction distribution differs from the champion's: PSI ")
    routing = world.routing()
    assert (routing.stable_version, routing.weights) == ("1", {})
    assert world.registry.get_aliases(NAME) == {"champion": 1}
    status = world.registry.get_status(NAME, 2)
    assert status is not None and status["status"] == "rejected"
    assert "PSI" in status["reason"]
    assert world.registry.get_status(NAME, 1) is None
    assert world.alarms() == []
    state = world.state()
    assert (state.status, state.weight) == ("rolled_back", 0.0)
    [record] = state.rollbacks
    assert (record.challenger_version, record.weight_at_detection) == (2, 0.1)
    assert record.canary_started_at == started.state.started_at
    assert record.time_to_detect_seconds > 0.0
    assert record.time_to_revert_seconds >= 0.0

    after = world.send(30)
    assert after.served == Counter({"1": 30})
    assert after.model_versions == Counter({1: 30})
    again = world.tick()
    assert again.action == "none"
    assert world.state() == state


LABELS = [int(row[CFG.demo.training.target]) for row in csv.DictReader(io.StringIO(CSV_TEXT))]


def send_with_outcomes(world: World, requests: int) -> int:
    """POST /predict ``requests`` times, then log the true label of every row answered; rows labelled."""
    world.clock.wait_for_now()
    outcomes: list[tuple[str, Any]] = []
    with contextlib.redirect_stdout(OutputRouter(sys.stdout, world.emitted, None)):
        for _ in range(requests):
            picked = world.rng.sample(range(len(FEATURE_ROWS)), ROWS_PER_REQUEST)
            body = json.dumps({"rows": [FEATURE_ROWS[i] for i in picked]})
            event = api_gateway_event("POST", "/predict", body, headers={"Content-Type": "application/json"})
            answer = json.loads(world.host.invoke("predict", event)["body"])
            outcomes += [(f"{answer['request_id']}-{k}", LABELS[i]) for k, i in enumerate(picked)]
    world.clock.requests_sent()
    assert world.ports.outcomes is not None
    world.ports.outcomes.put_batch(NAME, outcomes)
    return len(outcomes)


def test_a_challenger_that_answers_worse_on_labelled_traffic_is_rolled_back_on_its_labels(world: World) -> None:
    world.train_challenger(csv_text=flipped_labels(CSV_TEXT))
    world.tick()

    labelled = send_with_outcomes(world, REQUESTS)
    rolled_back = world.tick()

    assert labelled == REQUESTS * ROWS_PER_REQUEST
    assert rolled_back.action == "rollback"
    assert rolled_back.reason.startswith("challenger accuracy 0.")
    assert "on labelled traffic" in rolled_back.reason and "worse" in rolled_back.reason
    assert "PSI" not in rolled_back.reason  # labels decide when both sides have enough of them
    assert (world.routing().stable_version, world.routing().weights) == ("1", {})
    assert world.registry.get_aliases(NAME) == {"champion": 1}
    status = world.registry.get_status(NAME, 2)
    assert status is not None and status["status"] == "rejected" and "labelled traffic" in status["reason"]
    (judged,) = world.state().stage_figures
    assert judged.outcome.startswith("rolled back") and judged.quality_metric == "accuracy"
    assert judged.quality_drop is not None and judged.quality_drop > judged.limits["max_quality_drop"]
    assert judged.labeled >= judged.limits["min_labeled"]
    assert "accuracy drop" in judged.describe()


def test_a_challenger_that_errors_trips_its_errors_alarm_and_is_rolled_back(world: World) -> None:
    champion = world.registry.get_card(NAME, 1)
    # Answers its canned prediction at load, then NaN for every request: a 5xx, every time.
    world.register_challenger(*canned_nan_graph(champion), description="NaN answers")
    world.tick()

    traffic = world.send(REQUESTS)

    assert traffic.statuses[500] == traffic.served["2"] > 0
    assert traffic.statuses[200] == traffic.served["1"]
    rolled_back = world.tick()
    assert (rolled_back.action, rolled_back.reason) == ("rollback", f"alarm: {ERRORS_ALARM}")
    assert world.routing().weights == {}
    assert world.registry.get_aliases(NAME) == {"champion": 1}
    status = world.registry.get_status(NAME, 2)
    assert status is not None and status["status"] == "rejected"
    assert len(world.state().rollbacks) == 1


def test_a_challenger_slower_than_the_latency_limit_trips_its_p99_alarm_and_is_rolled_back(world: World) -> None:
    world.ports.max_p99_latency_ms = 40.0  # the canary's p99-latency alarm threshold, set when the canary starts
    world.train_challenger()
    world.tick()
    service = world.host.predict_environment("2")[0].service()
    graph = service.loaded.model
    real_run = graph.run

    def slow_run(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.06)  # every answer of v2 takes longer than the limit
        return real_run(*args, **kwargs)

    graph.run = slow_run  # type: ignore[method-assign]
    traffic = world.send(REQUESTS)

    assert traffic.statuses == Counter({200: REQUESTS}) and traffic.served["2"] > 0
    rolled_back = world.tick()

    latency_alarm = ERRORS_ALARM.replace("-errors", "-p99-latency")
    assert (rolled_back.action, rolled_back.reason) == ("rollback", f"alarm: {latency_alarm}")
    assert (world.routing().stable_version, world.routing().weights) == ("1", {})
    assert world.registry.get_aliases(NAME) == {"champion": 1}
    assert world.alarms() == []


def test_a_challenger_whose_model_cannot_load_is_rolled_back(world: World) -> None:
    champion = world.registry.get_card(NAME, 1)
    graph = world.registry.read_artifact(champion, "serving")
    world.register_challenger(graph, canned=[0.25, 0.75])  # its canned prediction fails: the graph never serves
    world.tick()
    traffic = world.send(REQUESTS)
    assert traffic.statuses[503] == traffic.served["2"] > 0

    assert world.tick().action == "rollback"


def test_the_canary_alarms_and_counts_watch_the_series_predict_emits(world: World) -> None:
    """Regression: predict's metrics once carried a 'service' dimension the local runtime never set."""
    world.train_challenger()
    world.tick()
    traffic = world.send(REQUESTS)
    world.sync()

    emitted = {tuple(sorted(p.dimensions.items())) for p in world.emitted.points if p.name == "Predictions"}
    [alarm] = world.clients.cloudwatch.describe_alarms(AlarmNames=[ERRORS_ALARM])["MetricAlarms"]
    watched = tuple(sorted((d["Name"], d["Value"]) for d in alarm["Dimensions"]))
    assert watched in emitted
    state = world.state()
    checks = rollout.observe(world.ports, state, world.policy, world.clock.step())
    assert (checks.challenger_requests, checks.stable_requests) == (traffic.served["2"], traffic.served["1"])


# -- idempotence and crashes ----------------------------------------------------------------------------------
def test_a_tick_run_twice_at_the_same_time_changes_nothing(world: World) -> None:
    world.train_challenger()
    canary_at_half(world)
    world.sync()
    world.clock.step()
    state, etag = world.ports.store.load(NAME)

    first = rollout.tick(world.ports, NAME, world.policy)
    second = rollout.tick(world.ports, NAME, world.policy)

    assert first.action == second.action == "hold"
    assert world.ports.store.load(NAME) == (state, etag)
    assert world.routing().weights == {"2": 0.5}
    assert world.lambda_versions() == ["1", "2"]


def test_a_tick_repeated_at_the_moment_of_an_advance_holds(world: World) -> None:
    world.train_challenger()
    canary_at_half(world)
    state, etag = world.ports.store.load(NAME)

    repeated = rollout.tick(world.ports, NAME, world.policy)

    assert repeated.action == "hold"
    assert world.ports.store.load(NAME) == (state, etag)


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_while_starting_the_canary_is_finished_or_redone_by_the_next_tick(world: World, point) -> None:
    world.train_challenger()
    world.store.crash = point

    with pytest.raises(ControllerCrash):
        world.tick()

    assert world.routing().weights == ({"2": 0.1} if point == (2, "before") else {})
    resumed = world.tick()

    assert (resumed.action, resumed.state.status, resumed.state.weight) == ("start", "canary", 0.1)
    assert (resumed.state.stable_function_version, resumed.state.canary_function_version) == ("1", "2")
    assert world.routing().weights == {"2": 0.1}
    assert world.lambda_versions() == ["1", "2"]
    state = world.state()
    assert state.pending is None
    assert len([e for e in state.history if "started" in e.what]) == 1


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_while_moving_the_alias_to_fifty_percent_does_not_advance_twice(world: World, point) -> None:
    world.train_challenger()
    world.tick()
    world.send(REQUESTS)
    world.store.crash = point

    with pytest.raises(ControllerCrash):
        world.tick()

    assert world.routing().weights == ({"2": 0.5} if point == (2, "before") else {"2": 0.1})
    resumed = world.tick()

    assert (resumed.action, resumed.state.stage_index, resumed.state.weight) == ("advance", 1, 0.5)
    assert world.routing().weights == {"2": 0.5}
    assert world.tick().action == "hold"
    assert world.state().status == "canary" and world.state().pending is None
    assert world.lambda_versions() == ["1", "2"]


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_in_the_middle_of_a_rollback_is_finished_by_the_next_tick(world: World, point) -> None:
    world.train_challenger(csv_text=flipped_labels(CSV_TEXT))
    world.tick()
    world.send(REQUESTS)
    world.store.crash = point

    with pytest.raises(ControllerCrash):
        world.tick()

    resumed = world.tick()

    assert resumed.action == "rollback"
    state = world.state()
    assert (state.status, state.pending) == ("rolled_back", None)
    assert len(state.rollbacks) == 1
    assert world.registry.get_aliases(NAME) == {"champion": 1}
    assert world.routing().weights == {}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_crash_during_an_operator_promotion_is_finished_by_the_next_command(world: World, point) -> None:
    world.train_challenger()
    world.tick()
    world.store.crash = point

    with pytest.raises(ControllerCrash):
        rollout.promote(world.ports, NAME, world.policy)
    promoted = rollout.promote(world.ports, NAME, world.policy)

    assert promoted.state.status == "promoted"
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    assert (world.routing().stable_version, world.routing().weights) == ("2", {})
    assert world.lambda_versions() == ["1", "2"]


def test_a_failed_registry_update_during_promotion_leaves_traffic_where_it_was_and_is_retried(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.train_challenger()
    canary_at_half(world)
    real = world.ports.registry.set_aliases
    calls: list[int] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise StorageError("writing aliases.json failed: SlowDown")
        return real(*args, **kwargs)

    monkeypatch.setattr(world.ports.registry, "set_aliases", failing)

    with pytest.raises(StorageError):
        rollout.promote(world.ports, NAME, world.policy)

    assert world.routing().weights == {"2": 0.5}  # not yet 100% on a version the registry does not name
    assert world.state().pending is not None and world.state().pending.action == "promote"
    finished = world.tick()

    assert finished.action == "promote"
    assert (world.routing().stable_version, world.routing().weights) == ("2", {})
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    assert world.state().pending is None


def test_a_promotion_the_registry_refuses_holds_and_an_operator_rollback_undoes_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.train_challenger()
    canary_at_half(world)
    real = world.ports.registry.set_aliases

    def champion_moved(name: str, changes: dict[str, Any], **kwargs: Any) -> Any:
        if changes.get("champion") == 2:
            raise ConcurrentUpdateError("aliases of breast-cancer changed: champion is v7")
        return real(name, changes, **kwargs)

    monkeypatch.setattr(world.ports.registry, "set_aliases", champion_moved)

    with pytest.raises(rollout.RolloutError, match="no longer v1"):
        rollout.promote(world.ports, NAME, world.policy)
    held = world.tick()

    assert held.action == "hold" and "mlops rollback" in held.reason
    assert world.routing().weights == {"2": 0.5}  # traffic never moved to the version the registry refused
    undone = rollout.rollback(world.ports, NAME, "operator: registry moved")

    assert undone.state.status == "rolled_back" and world.state().pending is None
    assert (world.routing().stable_version, world.routing().weights) == ("1", {})


def test_a_tick_and_an_operator_rollback_racing_end_with_traffic_off_the_rolled_back_version(world: World) -> None:
    world.train_challenger()
    world.tick()
    world.send(REQUESTS)
    deployer = world.ports.deployer
    real_set_canary = deployer.set_canary
    tick_in_alias_call, release = threading.Event(), threading.Event()

    def slow_for_the_tick(*args: Any, **kwargs: Any) -> None:
        if threading.current_thread().name == "tick":
            tick_in_alias_call.set()
            assert release.wait(30)
        real_set_canary(*args, **kwargs)

    deployer.set_canary = slow_for_the_tick  # type: ignore[method-assign]
    results: list[rollout.TickResult] = []
    ticker = threading.Thread(target=lambda: results.append(world.tick()), name="tick")
    ticker.start()
    assert tick_in_alias_call.wait(30)  # the tick wrote "advance to 50%" and is about to move the alias

    rolled_back = rollout.rollback(world.ports, NAME, "operator: bad canary")
    release.set()  # the tick's alias change lands now, after the rollback's
    ticker.join(30)

    assert rolled_back.state.status == "rolled_back"
    assert results and results[0].state.status == "rolled_back"
    state = world.state()
    assert (state.status, state.pending) == ("rolled_back", None)
    assert state.rollbacks[-1].reason == "operator: bad canary"
    assert (world.routing().stable_version, world.routing().weights) == ("1", {})
    assert world.registry.get_aliases(NAME) == {"champion": 1}


# -- the operator ---------------------------------------------------------------------------------------------
def test_a_paused_canary_stays_where_it_is_until_resumed(world: World) -> None:
    world.train_challenger()
    world.tick()
    world.send(REQUESTS)

    rollout.pause(world.ports, NAME)
    paused = world.tick()

    assert (paused.action, paused.reason) == ("none", "paused by an operator")
    assert world.routing().weights == {"2": 0.1}
    assert world.state().paused

    rollout.pause(world.ports, NAME, paused=False)
    resumed = world.tick()

    assert resumed.action == "advance"
    assert world.routing().weights == {"2": 0.5}


def test_an_operator_rollback_during_the_canary_takes_it_out_of_traffic(world: World) -> None:
    world.train_challenger()
    world.tick()

    result = rollout.rollback(world.ports, NAME, "operator: looks wrong")

    assert (result.action, result.state.status) == ("rollback", "rolled_back")
    assert world.routing() == AliasRouting("1", {}, world.routing().revision_id)
    assert world.registry.get_aliases(NAME) == {"champion": 1}
    status = world.registry.get_status(NAME, 2)
    assert status is not None and status["status"] == "rejected"
    assert "operator: looks wrong" in status["reason"]
    [record] = world.state().rollbacks
    assert record.reason == "operator: looks wrong"
    assert world.send(20).served == Counter({"1": 20})


def test_an_operator_promotion_during_the_canary_makes_the_challenger_champion_now(world: World) -> None:
    world.train_challenger()
    world.tick()

    result = rollout.promote(world.ports, NAME, world.policy)

    assert (result.action, result.state.status, result.state.weight) == ("promote", "promoted", 1.0)
    routing = world.routing()
    assert (routing.stable_version, routing.weights) == ("2", {})
    assert world.pinned_model("2") == "2"
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    status = world.registry.get_status(NAME, 2)
    assert status is not None and status["status"] == "champion"
    assert world.alarms() == []
    after = world.send(30)
    assert (after.served, after.model_versions) == (Counter({"2": 30}), Counter({2: 30}))
    assert world.tick().action == "none"


def _waiting_challenger(world: World) -> None:
    uri = world.datasets.upload("challenger.csv", CSV_TEXT.encode())
    spec = CFG.demo.training.model_copy(update={"estimator": GOOD_CHALLENGER})
    train_and_register(world.registry, world.datasets, model_name=NAME, dataset_uri=uri, spec=spec)
    world.registry.set_aliases(NAME, {"challenger": 2})


def test_an_operator_promotion_of_a_waiting_challenger_makes_it_champion_at_once_through_the_controller(
    world: World,
) -> None:
    _waiting_challenger(world)

    result = rollout.promote(world.ports, NAME, world.policy)

    assert (result.action, result.state.status, result.state.challenger_version) == ("promote", "promoted", 2)
    routing = world.routing()
    assert routing.weights == {} and world.pinned_model(routing.stable_version) == "2"
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    assert "made champion at once" in result.state.history[-1].what
    assert world.send(20).model_versions == Counter({2: 20})
    assert world.tick().action == "none"


def test_an_operator_promotion_of_a_requested_canary_makes_the_challenger_champion_at_once(world: World) -> None:
    world.train_challenger()  # registered as challenger, its canary requested (pending)
    assert world.state().status == "pending"

    result = rollout.promote(world.ports, NAME, world.policy)

    assert (result.action, result.state.status, result.state.challenger_version) == ("promote", "promoted", 2)
    assert world.pinned_model(world.routing().stable_version) == "2" and world.routing().weights == {}
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    assert world.tick().action == "none"


def test_an_operator_promotion_with_canary_of_a_waiting_challenger_requests_its_canary(world: World) -> None:
    _waiting_challenger(world)

    result = rollout.promote(world.ports, NAME, world.policy, canary=True)

    assert (result.action, result.state.status, result.state.challenger_version) == ("requested", "pending", 2)
    assert world.routing().weights == {}
    with pytest.raises(rollout.RolloutError, match="already pending"):
        rollout.promote(world.ports, NAME, world.policy, canary=True)
    assert world.tick().action == "start"
    assert world.routing().weights == {"2": 0.1}


def test_operator_commands_that_do_not_fit_are_refused(world: World) -> None:
    with pytest.raises(rollout.RolloutError, match="no challenger to promote"):
        rollout.promote(world.ports, NAME, world.policy)
    with pytest.raises(rollout.RolloutError, match="no canary"):
        rollout.rollback(world.ports, NAME)
    assert world.tick().action == "none"
    assert world.routing().weights == {}


# -- alias weights ------------------------------------------------------------------------------------------
@pytest.fixture
def deployer(aws: Any, boto_session: boto3.session.Session) -> LambdaAliasDeployer:
    """The predict function with version 1 behind ``live``, and nothing else."""
    clients = AwsClients(s3=aws, **{s: boto_session.client(s) for s in ("lambda", "events", "iam")})
    ensure_resources(clients, CFG)
    return LambdaAliasDeployer(clients.lambda_, CFG.predict_function_name, CFG.rollout.alias_name)


@pytest.mark.parametrize(
    "weight",
    [1.5, 1.0, pytest.param(math.nan, id="nan"), -0.1],
)
def test_the_alias_refuses_impossible_weights_and_keeps_its_routing(
    deployer: LambdaAliasDeployer, weight: float
) -> None:
    canary = deployer.publish_pinned(2)
    deployer.set_canary("1", canary, 0.25)

    with pytest.raises(DeploymentError, match="alias weight"):
        deployer.set_canary("1", canary, weight)

    assert (deployer.routing().stable_version, deployer.routing().weights) == ("1", {"2": 0.25})


def test_publishing_a_pinned_version_twice_reuses_the_first(deployer: LambdaAliasDeployer) -> None:
    first = deployer.publish_pinned(2)

    assert deployer.publish_pinned(2) == first == "2"
    assert deployer.pinned_model_version(first) == 2
    assert deployer.pinned_model_version("1") is None
    assert deployer.publish_pinned(3) == "3"


def test_the_canary_does_not_start_while_a_code_deployment_shifts_the_alias(world: World) -> None:
    """CodeDeploy canaries a new handler through the same alias weights; the controller waits for it."""
    lam = world.clients.lambda_
    name = CFG.predict_function_name
    code_version = lam.publish_version(FunctionName=name, Description="code deployment")["Version"]
    lam.update_alias(
        FunctionName=name,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {code_version: 0.1}},
    )
    world.train_challenger()

    held = world.tick()

    assert held.action == "hold" and "shifting traffic" in held.reason
    assert world.state().status == "pending"
    assert world.routing().weights == {code_version: 0.1}

    lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion=code_version, RoutingConfig={"AdditionalVersionWeights": {}}
    )
    started = world.tick()

    assert (started.action, world.routing().stable_version, world.routing().weights) == (
        "start",
        code_version,
        {started.state.canary_function_version: 0.1},
    )


def test_publishing_a_pinned_version_leaves_latest_resolving_the_champion(world: World) -> None:
    deployer = world.ports.deployer
    canary = deployer.publish_pinned(2)

    latest = world.clients.lambda_.get_function_configuration(FunctionName=CFG.predict_function_name)
    assert "MODEL_VERSION" not in latest["Environment"]["Variables"]
    assert deployer.pinned_model_version(canary) == 2


def test_a_canary_does_not_undo_a_code_deployment_that_repointed_the_alias(world: World) -> None:
    world.train_challenger()
    world.tick()
    world.send(REQUESTS)
    lam = world.clients.lambda_
    name = CFG.predict_function_name
    code_version = lam.publish_version(FunctionName=name, Description="code deployment")["Version"]
    lam.update_alias(
        FunctionName=name, Name="live", FunctionVersion=code_version, RoutingConfig={"AdditionalVersionWeights": {}}
    )

    held = world.tick()

    assert held.action == "hold" and f"serves Lambda version {code_version}" in held.reason
    assert (world.routing().stable_version, world.routing().weights) == (code_version, {})


# -- champion changes at once, through the controller ---------------------------------------------------------
def test_making_a_version_champion_at_once_publishes_it_pinned_moves_the_alias_and_restore_undoes_it(
    world: World,
) -> None:
    uri = world.datasets.upload("v2.csv", CSV_TEXT.encode())
    spec = CFG.demo.training.model_copy(update={"estimator": GOOD_CHALLENGER})
    train_and_register(world.registry, world.datasets, model_name=NAME, dataset_uri=uri, spec=spec)

    made = rollout.make_champion(world.ports, NAME, 2, "mlops train --champion")

    assert (made.action, made.state.status, made.state.pending) == ("promote", "promoted", None)
    routing = world.routing()
    assert routing.weights == {} and world.pinned_model(routing.stable_version) == "2"
    assert world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}
    assert world.send(20).model_versions == Counter({2: 20}), "the running host serves v2 at once"
    assert rollout.make_champion(world.ports, NAME, 2, "again").action == "none"

    restored = rollout.restore_previous(world.ports, NAME, "v2 misbehaves")

    assert restored.state.challenger_version == 1 and restored.state.status == "promoted"
    assert world.pinned_model(world.routing().stable_version) == "1"
    assert world.registry.get_aliases(NAME)["champion"] == 1
    assert world.send(20).model_versions == Counter({1: 20})
    assert "v1 made champion at once" in restored.state.history[-1].what


def test_making_a_champion_at_once_is_refused_while_a_canary_runs(world: World) -> None:
    world.train_challenger()
    world.tick()  # the canary starts

    with pytest.raises(rollout.RolloutError, match="finish it .* or roll it back"):
        rollout.make_champion(world.ports, NAME, 2, "too early")
    assert world.routing().weights != {}


def test_the_rollout_function_takes_promote_with_canary_and_restore_from_an_operator(
    world: World, lambda_context: Any
) -> None:
    values = {k.lower(): v for k, v in function_environment(CFG, "rollout").items()}
    function = RolloutFunction(RolloutSettings.model_validate(values), world.clients, CFG.metrics_namespace)
    function.ports, function.policy = world.ports, world.policy
    _waiting_challenger(world)

    requested = function.handle({"action": "promote", "canary": True}, lambda_context)
    assert (requested["action"], requested["state"]["status"]) == ("requested", "pending")
    function.handle({"action": "rollback", "reason": "not now"}, lambda_context)
    world.registry.set_aliases(NAME, {"challenger": 2})
    promoted = function.handle({"action": "promote"}, lambda_context)
    assert (promoted["action"], world.registry.get_aliases(NAME)["champion"]) == ("promote", 2)

    restored = function.handle({"action": "restore"}, lambda_context)

    assert restored["action"] == "promote" and world.registry.get_aliases(NAME)["champion"] == 1
    assert world.pinned_model(world.routing().stable_version) == "1"


def test_a_host_serving_another_model_refuses_a_version_pinned_to_this_one(world: World) -> None:
    from functions.local.host import ServedModelMismatchError

    pinned = world.ports.deployer.publish_pinned(1)
    world.ports.deployer.route_all(pinned)
    other = FunctionHost(CFG.model_copy(update={"model_name": "iris"}), world.clients)

    with pytest.raises(ServedModelMismatchError, match=f"Lambda version {pinned} is pinned to 'breast-cancer' v1"):
        other.predict_environment(pinned)
