"""retrain against moto: gates, registration as challenger, rollout request, lock, cooldown, failures."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import functions.handlers.retrain as retrain_module
import functions.services.retrain as retrain_service
from functions.adapters.capture import CaptureRecord, CaptureWriter
from functions.adapters.datasets import S3DatasetStore
from functions.adapters.events import MODEL_DRIFT_DETECTED
from functions.adapters.locks import S3RetrainHistory, S3RetrainLock
from functions.adapters.outcomes import S3OutcomeStore
from functions.adapters.registry import S3ModelRegistry
from functions.adapters.rollout_state import S3RolloutStore
from functions.bootstrap import AwsClients
from functions.domain import graph
from functions.domain.card import ModelCard
from functions.domain.dataset import parse_csv
from functions.errors import StorageError
from functions.handlers.retrain import RetrainEnvironment, RetrainFunction, instrument
from functions.settings import RetrainSettings
from tests.conftest import CFG, DATA
from tests.events import load_event

NAME = CFG.model_name
BASE_ROWS = 569
OPERATOR = {"trigger": "operator", "force": False}
FORCED = {"trigger": "operator", "force": True, "reason": "hotfix"}


@dataclass
class FakeClock:
    """Wall time the test moves by hand (starts at the real time, so captured traffic is recent)."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def events_client(aws: Any, boto_session: Any) -> Any:
    client = boto_session.client("events")
    client.create_event_bus(Name=CFG.event_bus_name)
    return client


@pytest.fixture
def make_function(aws: Any, events_client: Any, clock: FakeClock) -> Callable[..., RetrainFunction]:
    """``make_function(**settings)``: a retrain execution environment over moto with the test's clock."""

    def build(**overrides: Any) -> RetrainFunction:
        fields: dict[str, Any] = {
            "registry_bucket": CFG.registry_bucket,
            "data_bucket": CFG.data_bucket,
            "model_name": NAME,
            "event_bus_name": CFG.event_bus_name,
            "capture_days": 1.0,  # 25 hour partitions to list instead of 721: the tests stay fast
        }
        fields.update(overrides)
        clients = AwsClients(s3=aws, events=events_client)
        return RetrainFunction(RetrainEnvironment(RetrainSettings(**fields), clients, clock=clock))

    return build


@pytest.fixture
def invoke(make_function: Callable[..., RetrainFunction], lambda_context: Any) -> Callable[..., dict[str, Any]]:
    """``invoke(event, **settings)``: one instrumented invocation, as Lambda runs it."""

    def run(event: dict[str, Any], **settings: Any) -> dict[str, Any]:
        return instrument(make_function(**settings))(event, lambda_context)

    return run


@pytest.fixture
def lock(aws: Any, clock: FakeClock) -> S3RetrainLock:
    return S3RetrainLock(aws, CFG.registry_bucket, ttl_seconds=900, clock=clock)


@pytest.fixture
def history(aws: Any) -> S3RetrainHistory:
    return S3RetrainHistory(aws, CFG.registry_bucket)


@pytest.fixture
def rollouts(aws: Any) -> S3RolloutStore:
    return S3RolloutStore(aws, CFG.registry_bucket)


@dataclass(frozen=True)
class Stores:
    """What a retrain leaves behind: versions and aliases, rollout state, the lock, the run records."""

    registry: S3ModelRegistry
    rollouts: S3RolloutStore
    lock: S3RetrainLock
    history: S3RetrainHistory


@pytest.fixture
def stores(
    registry: S3ModelRegistry, rollouts: S3RolloutStore, lock: S3RetrainLock, history: S3RetrainHistory
) -> Stores:
    return Stores(registry, rollouts, lock, history)


@dataclass(frozen=True)
class Traffic:
    labelled_rows: int
    duplicate_rows: int
    unusable_rows: int


@pytest.fixture
def traffic(champion: ModelCard, aws: Any, clock: FakeClock) -> Traffic:
    """20 captured 3-row requests (rows of the real data set) an hour ago; outcomes for the first 15.

    Request 0 is captured twice (its 3 rows must count once), row 1-0 gets a corrected outcome
    later (the latest counts), row 14-2's outcome is a class the model does not have (unusable),
    requests 15-19 have no outcomes (not training data).
    """
    table = np.genfromtxt(DATA / CFG.demo.file, delimiter=",", names=True)
    names = champion.feature_schema.names
    served_at = (clock.now - timedelta(hours=1)).timestamp()
    records = []
    for r in range(20):
        rows = table[3 * r : 3 * r + 3]
        records.append(
            CaptureRecord(
                request_id=f"req-{r}",
                timestamp=served_at + r,
                model_version=champion.version,
                columns={n: rows[n].astype(np.float64) for n in names},
                predictions=rows["target"].astype(np.int64),
                probabilities=None,
                n_rows=3,
            )
        )
    writer = CaptureWriter(aws, CFG.data_bucket, CFG.capture_prefix, NAME)
    writer.write(records)
    writer.write(records[:1])  # the same request captured again
    outcomes = S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix)
    labelled = [(f"{rec.request_id}-{i}", int(rec.predictions[i])) for rec in records[:15] for i in range(3)]
    labelled[-1] = ("req-14-2", 7)
    outcomes.put_batch(NAME, labelled, received_at=clock.now - timedelta(minutes=30))
    outcomes.put_batch(NAME, [("req-1-0", 1 - labelled[3][1])], received_at=clock.now - timedelta(minutes=10))
    return Traffic(labelled_rows=44, duplicate_rows=3, unusable_rows=1)


def emf_metrics(out: str) -> dict[str, float]:
    """Metric name to value of the EMF records printed by the handler."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        record = json.loads(line)
        assert record["model_name"] == NAME
        for definition in record["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = record[definition["Name"]]
            found[definition["Name"]] = sum(value) if isinstance(value, list) else value
    return found


def drift_event(model_name: str = NAME, psi: dict[str, float] | None = None) -> dict[str, Any]:
    event = load_event("schedule")
    detail: dict[str, Any] = {"model_name": model_name, "version": 1}
    if psi is not None:
        detail["drifted_features"] = [{"name": name, "kind": "numeric", "psi": value} for name, value in psi.items()]
    event.update({"detail-type": MODEL_DRIFT_DETECTED, "source": "mlops", "detail": detail})
    return event


# -- the happy path -----------------------------------------------------------------------------
def test_retrain_registers_the_candidate_as_challenger_and_requests_a_rollout(
    traffic: Traffic, invoke: Any, stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    result = invoke(drift_event())

    assert result["status"] == "registered", result["reasons"]
    assert (result["champion_version"], result["candidate_version"]) == (1, 2)
    assert result["rollout_requested"] is True
    (published,) = result["events"]
    assert published["detail_type"] == "CandidateRegistered"
    assert published["detail"]["version"] == 2
    assert published["event_id"]
    assert result["reasons"] == []
    assert stores.registry.get_aliases(NAME) == {"champion": 1, "challenger": 2}
    state, _ = stores.rollouts.load(NAME)
    assert (state.status, state.challenger_version, state.champion_version) == ("pending", 2, 1)

    card = stores.registry.get_card(NAME, 2)
    assert card.parent_version == 1
    assert card.training_data.rows == BASE_ROWS + traffic.labelled_rows
    assert card.training_data.uri == stores.registry.get_card(NAME, 1).training_data.uri
    assert card.estimator == stores.registry.get_card(NAME, 1).estimator
    assert card.description.startswith(f"retrained from v1 on drift ({MODEL_DRIFT_DETECTED} ")
    assert result["training_rows"] == {
        "total": BASE_ROWS + traffic.labelled_rows,
        "base": BASE_ROWS,
        "captured": traffic.labelled_rows,
        "duplicates_dropped": traffic.duplicate_rows,
        "unusable_dropped": traffic.unusable_rows,
        "corrupt_capture_records_skipped": 0,
        "corrupt_outcome_records_skipped": 0,
    }
    metrics = result["metrics"]
    assert metrics["primary_metric"] == "roc_auc"
    assert card.metrics == metrics["candidate"]
    assert metrics["candidate"]["roc_auc"] >= metrics["champion"]["roc_auc"] * (1 - 0.01)
    assert all(check["passed"] for check in result["gates"].values())

    assert stores.lock.current(NAME) is None  # released
    last = stores.history.last(NAME)
    assert last is not None
    assert (last.outcome, last.candidate_version, last.champion_version) == ("registered", 2, 1)
    assert emf_metrics(capsys.readouterr().out) == {"RetrainStarted": 1, "CandidateRegistered": 1}


def test_the_candidate_trains_on_no_held_out_row(traffic: Traffic, invoke: Any, registry: S3ModelRegistry) -> None:
    result = invoke(OPERATOR)

    card = registry.get_card(NAME, 2)
    holdout = result["metrics"]["holdout_rows"]
    assert card.training_data.train_rows + holdout < card.training_data.rows
    assert 0.2 * card.training_data.rows < holdout < 0.3 * card.training_data.rows  # a quarter of the distinct rows


def test_without_auto_deploy_the_candidate_waits_as_challenger(
    traffic: Traffic, invoke: Any, registry: S3ModelRegistry, rollouts: S3RolloutStore
) -> None:
    result = invoke(OPERATOR, auto_deploy=False)

    assert result["status"] == "registered"
    assert result["rollout_requested"] is False
    assert result["reasons"] == ["auto-deploy is off: v2 waits as challenger for `mlops promote`"]
    assert registry.get_aliases(NAME) == {"champion": 1, "challenger": 2}
    assert rollouts.load(NAME)[0].status == "idle"


def test_without_new_labelled_traffic_only_an_operator_retrains(
    champion: ModelCard, invoke: Any, clock: FakeClock, stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    scheduled = invoke(load_event("schedule"))

    assert scheduled["status"] == "skipped"
    assert scheduled["trigger"].startswith("schedule (Scheduled Event ")
    assert scheduled["reasons"] == [
        "only 0 captured rows with outcomes in the last 1 days (at least 1 needed); "
        "an operator can still retrain on the base dataset"
    ]
    assert [c.version for c in stores.registry.list_versions(NAME)] == [1]
    last = stores.history.last(NAME)
    assert last is not None
    assert last.outcome == "skipped"  # it looked, so the cooldown holds off the next event
    assert emf_metrics(capsys.readouterr().out) == {"RetrainStarted": 1, "RetrainSkipped": 1}

    operator = invoke(FORCED)

    assert operator["status"] == "registered"
    assert stores.registry.get_card(NAME, 2).training_data.rows == BASE_ROWS


def test_a_candidate_whose_graph_is_not_faithful_is_rejected_like_any_gate(
    traffic: Traffic, invoke: Any, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(graph, "TOLERANCE", 1e-300)  # no float64 computation is that faithful

    result = invoke(drift_event())

    assert result["status"] == "rejected" and result["candidate_version"] is None
    (reason,) = result["reasons"]
    assert "does not reproduce the pipeline" in reason and "worst rows:" in reason
    assert result["gates"]["serving_graph"]["passed"] is False
    assert [c.version for c in stores.registry.list_versions(NAME)] == [1]
    (rejection,) = stores.history.rejections(NAME)
    assert rejection["reasons"] == result["reasons"]


# -- gates ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "case",
    [
        ({"latency_budget_ms": 1e-6}, "latency", "1-row predict latency"),
        ({"artifact_budget_bytes": 100}, "artifact_size", "byte budget"),
    ],
    ids=["latency", "artifact_size"],
)
def test_a_candidate_failing_a_gate_is_rejected_recorded_and_changes_nothing(
    traffic: Traffic, invoke: Any, stores: Stores, capsys: pytest.CaptureFixture[str], case: tuple[Any, str, str]
) -> None:
    settings, gate, reason = case
    result = invoke(drift_event(), **settings)

    assert result["status"] == "rejected"
    assert result["candidate_version"] is None
    assert result["rollout_requested"] is False
    (text,) = result["reasons"]
    assert reason in text
    assert result["gates"][gate]["passed"] is False
    assert stores.registry.get_aliases(NAME) == {"champion": 1}
    assert [c.version for c in stores.registry.list_versions(NAME)] == [1]
    assert stores.rollouts.load(NAME)[0].status == "idle"
    (rejection,) = stores.history.rejections(NAME)
    assert rejection["key"] == result["rejection_key"]
    assert rejection["key"].startswith(f"models/{NAME}/rejections/")
    assert rejection["reasons"] == result["reasons"]
    assert rejection["champion_version"] == 1
    assert rejection["metrics"]["candidate"] == result["metrics"]["candidate"]
    last = stores.history.last(NAME)
    assert last is not None
    assert (last.outcome, last.reasons) == ("rejected", result["reasons"])
    assert stores.lock.current(NAME) is None
    assert emf_metrics(capsys.readouterr().out) == {"RetrainStarted": 1, "CandidateRejected": 1}


# -- the lock -------------------------------------------------------------------------------------
def test_a_retrain_is_skipped_while_another_holds_the_lock(
    traffic: Traffic, invoke: Any, stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = stores.lock.acquire(NAME, holder="schedule (another invocation)")
    assert theirs is not None

    result = invoke(FORCED)  # force skips the cooldown, never the lock

    assert result["status"] == "skipped"
    (reason,) = result["reasons"]
    assert reason.startswith("another retrain holds the lock (schedule (another invocation), since ")
    assert result["started"] is False
    assert [c.version for c in stores.registry.list_versions(NAME)] == [1]
    assert stores.lock.holds(theirs)  # untouched
    assert stores.history.last(NAME) is None  # a skipped run starts no cooldown
    assert emf_metrics(capsys.readouterr().out) == {"RetrainSkipped": 1}


def test_an_expired_lock_is_taken_over(
    traffic: Traffic, invoke: Any, lock: S3RetrainLock, clock: FakeClock, registry: S3ModelRegistry
) -> None:
    dead = lock.acquire(NAME, holder="a run that crashed")
    assert dead is not None
    clock.advance(901)

    result = invoke(OPERATOR)

    assert result["status"] == "registered"
    assert lock.current(NAME) is None
    assert lock.release(dead) is False  # the crashed run cannot delete anything now


def test_two_runs_cannot_both_take_over_an_expired_lock(aws: Any, lock: S3RetrainLock, clock: FakeClock) -> None:
    assert lock.acquire(NAME) is not None
    clock.advance(901)
    stale = lock.current(NAME)  # B reads the expired lock ...

    class SlowReader(S3RetrainLock):
        def current(self, model_name: str) -> Any:
            return stale  # ... and keeps acting on that read

    winner = lock.acquire(NAME, holder="C")  # ... while C takes it over first
    loser = SlowReader(aws, CFG.registry_bucket, ttl_seconds=900, clock=clock).acquire(NAME, holder="B")

    assert winner is not None
    assert winner.took_over_from is not None
    assert loser is None
    assert lock.holds(winner)


def test_release_deletes_only_our_own_lock(aws: Any, lock: S3RetrainLock, clock: FakeClock) -> None:
    first = lock.acquire(NAME)
    assert first is not None
    assert lock.acquire(NAME) is None  # held
    clock.advance(901)
    second = lock.acquire(NAME)
    assert second is not None

    assert lock.release(first) is False
    assert lock.holds(second)
    assert lock.release(second) is True
    assert lock.current(NAME) is None
    assert lock.acquire(NAME) is not None  # free again (over a delete marker: the bucket is versioned)


def test_an_unreadable_lock_counts_as_expired(aws: Any, lock: S3RetrainLock) -> None:
    aws.put_object(Bucket=CFG.registry_bucket, Key=lock.key(NAME), Body=b"not json")

    lease = lock.acquire(NAME)

    assert lease is not None
    assert lease.took_over_from == "unreadable lock"


# -- the cooldown ---------------------------------------------------------------------------------
def test_cooldown_turns_a_burst_of_drift_events_into_one_retrain_and_force_overrides_it(
    traffic: Traffic, invoke: Any, clock: FakeClock, registry: S3ModelRegistry
) -> None:
    first = invoke(drift_event(), auto_deploy=False)
    clock.advance(60)
    burst = [invoke(drift_event(), auto_deploy=False) for _ in range(2)]
    clock.advance(60)
    forced = invoke(FORCED, auto_deploy=False)

    assert first["status"] == "registered"
    assert [r["status"] for r in burst] == ["skipped", "skipped"]
    assert burst[0]["reasons"][0].startswith("cooldown: the last retrain started at ")
    assert "(registered)" in burst[0]["reasons"][0]
    assert forced["status"] == "registered"
    assert forced["candidate_version"] == 3
    assert forced["trigger"] == "operator (hotfix), forced"
    assert [c.version for c in registry.list_versions(NAME)] == [1, 2, 3]

    clock.advance(3600)
    assert invoke(drift_event(), auto_deploy=False)["status"] == "skipped"  # nothing new: see the next test


def test_a_drift_event_without_new_evidence_does_not_retrain_but_new_labels_or_more_drift_do(
    traffic: Traffic, invoke: Any, clock: FakeClock, aws: Any
) -> None:
    assert invoke(drift_event(psi={"mean_radius": 0.4}), auto_deploy=False)["status"] == "registered"
    clock.advance(7200)

    same = invoke(drift_event(psi={"mean_radius": 0.42}), auto_deploy=False)
    assert same["status"] == "skipped"
    assert same["reasons"] == [
        f"no new evidence since the last retrain: the same {traffic.labelled_rows} labelled captured rows,"
        " and no feature drifted further than then"
    ]
    clock.advance(7200)
    further = invoke(drift_event(psi={"mean_radius": 0.9}), auto_deploy=False)
    assert further["status"] == "registered"
    clock.advance(7200)
    outcomes = S3OutcomeStore(aws, CFG.data_bucket, CFG.outcomes_prefix)
    outcomes.put_batch(NAME, [("req-16-0", 1)], received_at=clock.now - timedelta(minutes=1))
    assert invoke(drift_event(psi={"mean_radius": 0.9}), auto_deploy=False)["status"] == "registered"


def test_no_retrain_while_a_rollout_is_under_way(traffic: Traffic, invoke: Any, registry: S3ModelRegistry) -> None:
    assert invoke(OPERATOR)["rollout_requested"] is True

    result = invoke(FORCED)

    assert result["status"] == "skipped"
    assert result["reasons"] == ["a rollout of v2 is pending; retrain after it ends"]
    assert [c.version for c in registry.list_versions(NAME)] == [1, 2]


# -- failures -------------------------------------------------------------------------------------
def test_a_crash_during_training_fails_releases_the_lock_and_leaves_the_champion(
    champion: ModelCard, aws: Any, invoke: Any, stores: Stores, capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, key = champion.training_data.uri[5:].split("/", 1)
    aws.put_object(Bucket=bucket, Key=key, Body=b"mean_radius,target\nnot-a-number,1\n")

    result = invoke(drift_event())

    assert result["status"] == "failed"
    (reason,) = result["reasons"]
    assert reason.startswith("retrain failed: training_error: ")
    assert result["champion_version"] == 1
    assert result["candidate_version"] is None
    assert stores.registry.get_aliases(NAME) == {"champion": 1}
    assert stores.lock.current(NAME) is None
    last = stores.history.last(NAME)
    assert last is not None
    assert (last.outcome, last.reasons) == ("failed", result["reasons"])
    out = capsys.readouterr().out
    assert emf_metrics(out) == {"RetrainStarted": 1, "RetrainFailures": 1}
    (logged,) = [r for r in map(json.loads, out.splitlines()) if r.get("level") == "ERROR"]
    assert logged["message"] == "retrain failed"
    assert "TrainingError" in logged["exception"]
    assert logged["correlation_id"] == drift_event()["id"]


def test_an_unexpected_error_is_reported_without_its_details(
    traffic: Traffic, invoke: Any, lock: S3RetrainLock, registry: S3ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_training(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(retrain_service, "train", broken_training)

    result = invoke(OPERATOR)

    assert result["status"] == "failed"
    assert result["reasons"] == [
        "retrain failed: unexpected RuntimeError; the retrain function's logs have the details"
    ]
    assert lock.current(NAME) is None
    assert registry.get_aliases(NAME) == {"champion": 1}


def test_without_a_champion_there_is_nothing_to_retrain(aws: Any, invoke: Any, lock: S3RetrainLock) -> None:
    result = invoke(OPERATOR)

    assert result["status"] == "failed"
    assert "model_not_found" in result["reasons"][0]
    assert lock.current(NAME) is None


# -- events ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (drift_event("another-model"), "the event is about model 'another-model'; this function retrains"),
        ({**load_event("schedule"), "detail-type": "Something Else"}, "unsupported event: detail-type"),
        ({"trigger": "operator", "force": "maybe"}, "unsupported event: neither"),
        ({"hello": "world"}, "unsupported event: neither"),
    ],
)
def test_events_that_ask_for_no_retrain_are_skipped_with_the_reason(
    champion: ModelCard, invoke: Any, registry: S3ModelRegistry, event: dict[str, Any], reason: str
) -> None:
    result = invoke(event)

    assert result["status"] == "skipped"
    assert result["reasons"][0].startswith(reason)
    assert [c.version for c in registry.list_versions(NAME)] == [1]


@pytest.fixture
def fresh_handler(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(retrain_module, "_default", None)
    yield


@pytest.mark.usefixtures("champion", "events_client", "fresh_handler")
def test_lambda_handler_reads_its_settings_from_the_environment(
    function_env: Any, lambda_context: Any, registry: S3ModelRegistry
) -> None:
    function_env("retrain", CAPTURE_DAYS="1", AUTO_DEPLOY="false")

    result = retrain_module.lambda_handler(dict(OPERATOR), lambda_context)

    assert result["status"] == "registered", result["reasons"]
    assert result["rollout_requested"] is False
    assert registry.get_aliases(NAME) == {"champion": 1, "challenger": 2}


def test_a_champion_changed_during_the_retrain_keeps_its_challenger_slot(
    train_model: Any, invoke: Any, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_model()  # v1, champion
    train_model()  # v2, registered only
    real_train = retrain_service.train

    def train_while_an_operator_promotes(*args: Any, **kwargs: Any) -> Any:
        stores.registry.set_aliases(NAME, {"champion": 2, "previous": 1}, reason="operator promoted v2")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(retrain_service, "train", train_while_an_operator_promotes)

    result = invoke(OPERATOR)

    assert result["status"] == "registered"
    assert (result["champion_version"], result["candidate_version"]) == (1, 3)
    assert result["reasons"] == ["the champion changed during the retrain; v3 is registered but not made challenger"]
    assert result["rollout_requested"] is False
    assert stores.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}


def test_a_lock_that_cannot_be_released_does_not_undo_the_outcome(
    traffic: Traffic, make_function: Any, lambda_context: Any, stores: Stores, monkeypatch: pytest.MonkeyPatch
) -> None:
    function = make_function()

    def unreachable(_lease: Any) -> bool:
        raise StorageError("releasing failed: SlowDown")

    monkeypatch.setattr(function.env.ports().lock, "release", unreachable)

    result = instrument(function)(dict(OPERATOR), lambda_context)

    assert result["status"] == "registered"
    assert result["reasons"][-1].startswith("the retrain lock could not be released (releasing failed: SlowDown)")
    assert stores.registry.get_aliases(NAME)["challenger"] == 2


def test_an_event_that_could_not_be_published_is_reported_not_hidden(
    traffic: Traffic, invoke: Any, stores: Stores
) -> None:
    result = invoke(OPERATOR, event_bus_name="no-such-bus")

    assert result["status"] == "registered"
    assert result["events"] == []
    assert result["reasons"][-1].startswith("CandidateRegistered was not published: ")
    assert result["rollout_requested"] is True
    assert stores.registry.get_aliases(NAME)["challenger"] == 2


def test_storage_failing_before_the_lock_is_a_counted_failure(
    champion: ModelCard, make_function: Any, lambda_context: Any, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    function = make_function()

    def unreachable(_model_name: str) -> Any:
        raise StorageError("reading the cooldown record failed: ServiceUnavailable")

    monkeypatch.setattr(function.env.ports().history, "last", unreachable)

    result = instrument(function)(dict(OPERATOR), lambda_context)

    assert result["status"] == "failed"
    assert result["started"] is False
    assert result["reasons"] == ["storage_error: reading the cooldown record failed: ServiceUnavailable"]
    assert emf_metrics(capsys.readouterr().out) == {"RetrainFailures": 1}


def test_corrupt_capture_and_outcome_records_are_skipped_and_counted_and_retrain_goes_on(
    traffic: Traffic, invoke: Any, aws: Any, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    at = clock.now - timedelta(minutes=30)
    partition = f"{CFG.capture_prefix}/{NAME}/dt={at:%Y-%m-%d}/hour={at:%H}/"
    aws.put_object(Bucket=CFG.data_bucket, Key=partition + "bad.jsonl.gz", Body=gzip.compress(b"{oops\n[]\n"))
    aws.put_object(Bucket=CFG.data_bucket, Key=partition + "raw.jsonl.gz", Body=b"not gzip")
    outcomes = f"{CFG.outcomes_prefix}/{NAME}/dt={at:%Y-%m-%d}/bad.jsonl"
    aws.put_object(Bucket=CFG.data_bucket, Key=outcomes, Body=b'nope\n{"request_id": "r-0-0"}\n')

    result = invoke(drift_event())

    assert result["status"] == "registered", result["reasons"]
    rows = result["training_rows"]
    assert rows["captured"] == traffic.labelled_rows  # the good records all still count
    assert (rows["corrupt_capture_records_skipped"], rows["corrupt_outcome_records_skipped"]) == (3, 2)
    assert emf_metrics(capsys.readouterr().out)["RecordsSkipped"] == 5


def test_a_replaced_base_dataset_is_refused_with_the_reason_and_the_champion_keeps_serving(
    champion: ModelCard, aws: Any, invoke: Any, stores: Stores
) -> None:
    bucket, key = champion.training_data.uri[5:].split("/", 1)
    valid_but_different = (DATA / "breast_cancer.csv").read_text().replace(",0\n", ",1\n", 5)
    aws.put_object(Bucket=bucket, Key=key, Body=valid_but_different.encode())

    result = invoke(FORCED)

    assert result["status"] == "failed"
    (reason,) = result["reasons"]
    assert "is not the data the model was trained on" in reason and champion.training_data.sha256[:12] in reason
    assert stores.registry.get_aliases(NAME) == {"champion": 1}
    assert [c.version for c in stores.registry.list_versions(NAME)] == [1]


def test_uploading_another_file_under_the_same_name_never_changes_what_a_model_learned_from(
    champion: ModelCard, aws: Any, invoke: Any, stores: Stores
) -> None:
    datasets = S3DatasetStore(aws, CFG.data_bucket, CFG.datasets_prefix)
    name = champion.training_data.uri.rsplit("/", 1)[-1]
    other = datasets.upload(name, (DATA / "iris.csv").read_bytes())
    again = datasets.upload(name, (DATA / "breast_cancer.csv").read_bytes())

    assert other != champion.training_data.uri and again == champion.training_data.uri
    assert f"/sha256={champion.training_data.sha256}/" in champion.training_data.uri
    assert invoke(FORCED)["status"] == "registered"
    assert stores.registry.get_card(NAME, 2).training_data.sha256 == champion.training_data.sha256


def test_the_card_records_which_captured_rows_a_retrain_used(
    traffic: Traffic, invoke: Any, registry: S3ModelRegistry, clock: FakeClock
) -> None:
    invoke(OPERATOR)

    captured = registry.get_card(NAME, 2).training_data.captured
    assert captured is not None
    assert captured.rows == traffic.labelled_rows
    assert captured.window_end == clock.now and captured.window_start == clock.now - timedelta(days=1)
    used = [f"req-{r}-{i}" for r in range(15) for i in range(3) if (r, i) != (14, 2)]
    assert captured.row_ids_sha256 == retrain_service.row_ids_digest(used)


def test_the_holdout_is_split_by_content_so_replayed_rows_never_score_what_was_trained_on() -> None:
    base = parse_csv((DATA / "breast_cancer.csv").read_text(), "target", set(), regression=False)
    replayed = base.take(np.concatenate([np.arange(base.n_rows), np.arange(0, base.n_rows, 2)]))  # half twice

    train_part, holdout = retrain_service.holdout_split(replayed, 0.25, 42, "binary_classification")

    def rows(part: Any) -> set[tuple[float, ...]]:
        return set(zip(*(part.columns[n].tolist() for n in part.feature_names), strict=True))

    assert rows(train_part).isdisjoint(rows(holdout))
    assert train_part.n_rows + holdout.n_rows == replayed.n_rows
    assert 0.2 < holdout.n_rows / replayed.n_rows < 0.3
