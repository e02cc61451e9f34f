"""The local host runs each function in an execution environment of its own, as Lambda does:
a handler that blocks never holds up predict, and neither its metrics nor its log keys leak."""

from __future__ import annotations

import contextlib
import io
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from functions.bootstrap import AwsClients
from functions.handlers.scheduled import instrument_scheduled
from functions.local.events import LocalContext
from functions.local.host import FairLock, FunctionHost
from functions.local.observability import LocalMetrics, OutputRouter
from functions.local.runtime import ensure_resources, scheduled_event
from functions.observability import logger, metrics
from tests.conftest import CFG
from tests.events import load_event, with_body

WAIT = 60.0  # seconds: generous, only a deadlock ever waits this long


@pytest.fixture
def host(aws: Any, boto_session: boto3.session.Session, champion: Any) -> FunctionHost:
    clients = AwsClients(s3=aws, **{s: boto_session.client(s) for s in ("lambda", "cloudwatch", "events", "iam")})
    ensure_resources(clients, CFG)
    return FunctionHost(CFG, clients, seed=3)


class HeldTick:
    """A scheduled handler that adds a metric, logs, then waits until released, and logs again."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, event: dict[str, Any], context: LocalContext) -> dict[str, Any]:
        metrics.add_metric(name="HeldTickMetric", unit="Count", value=1)
        self.entered.set()
        if not self.release.wait(WAIT):
            raise TimeoutError("never released")
        logger.info("held tick done")
        return {"ticked": True}


def test_predict_answers_while_a_rollout_tick_is_held_and_nothing_of_either_leaks(host: FunctionHost) -> None:
    tick = HeldTick()
    host.add_handler("rollout", instrument_scheduled(tick))
    logs, emitted = io.StringIO(), LocalMetrics()
    invalid = with_body("predict_single", {"features": {"not_a_feature": 1}})
    with (
        contextlib.redirect_stdout(OutputRouter(sys.stdout, emitted, logs)),
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        held = pool.submit(host.invoke, "rollout", scheduled_event(CFG, "rollout"))
        try:
            assert tick.entered.wait(WAIT)
            answered = pool.submit(host.invoke, "predict", load_event("predict_single")).result(timeout=WAIT)
            rejected = pool.submit(host.invoke, "predict", invalid).result(timeout=WAIT)
            assert not held.done(), "the rollout handler was released before predict answered"
        finally:
            tick.release.set()
        assert held.result(timeout=WAIT) == {"ticked": True}

    assert answered["statusCode"] == 200
    assert rejected["statusCode"] == 422

    lines = [json.loads(line) for line in logs.getvalue().splitlines()]
    by_message = {line["message"]: line for line in lines}
    assert by_message["held tick done"]["function_name"] == CFG.resource_name("rollout")
    assert by_message["request rejected"]["function_name"] == CFG.resource_name("predict")
    assert by_message["request rejected"]["correlation_id"] == invalid["requestContext"]["requestId"]

    # The tick's metric was added before predict flushed its own, and still left with the tick's flush.
    names = {point.name: point for point in emitted.points}
    assert "model_version" in names["RejectedRequests"].dimensions
    assert names["HeldTickMetric"].dimensions == {}
    assert sum(1 for point in emitted.points if point.name == "HeldTickMetric") == 1


def test_an_environment_serves_queued_requests_first_come_first_served() -> None:
    lock = FairLock()
    served: list[int] = []

    def request(i: int) -> None:
        with lock:
            served.append(i)

    threads = [threading.Thread(target=request, args=(i,)) for i in range(6)]
    with lock:
        for i, thread in enumerate(threads):
            thread.start()
            while len(lock._waiters) < i + 1:  # this one is queued before the next one comes
                threading.Event().wait(0.001)
    for thread in threads:
        thread.join(WAIT)
    assert served == list(range(6))
    with lock:  # free again once the queue is empty
        pass
