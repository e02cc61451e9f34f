"""Code deploys and model canaries take turns: the deploy lock in the registry bucket, and the rollout
controller that makes no step while it is held and starts no canary while CodeDeploy deploys (moto)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto.codedeploy.models import codedeploy_backends
from moto.core import DEFAULT_ACCOUNT_ID

from functions.adapters.codedeploy import CodeDeployWatcher
from functions.adapters.locks import DEPLOY_LOCK_KEY, DeployLock, DeployLockHeldError, S3DeployLock
from functions.config import function_environment
from functions.handlers.rollout import build_ports
from functions.services import rollout
from functions.settings import RolloutSettings
from tests.conftest import CFG
from tests.integration.test_rollout import (
    NAME,
    REQUESTS,
    ControllerCrash,
    World,
    world,  # noqa: F401 - the fixture ``rollout_world`` takes
)

APPLICATION, GROUP = "mlops-local-predict", "mlops-local-predict-live"


@dataclass
class FakeClock:
    now: datetime = field(default_factory=lambda: datetime(2025, 3, 1, 12, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rollout_world(world: World) -> World:  # noqa: F811 - test_rollout's world: champion v1 serving, a controller
    return world


@pytest.fixture
def lock(aws: Any, clock: FakeClock) -> S3DeployLock:
    return S3DeployLock(aws, CFG.registry_bucket, clock=clock)


# -- the lock -----------------------------------------------------------------------------------------------
def test_the_deploy_lock_is_refused_to_a_second_owner_while_it_holds(lock: S3DeployLock, clock: FakeClock) -> None:
    lease = lock.acquire("ci-1234", "serving stack at abc123", ttl_seconds=900)

    assert lease.lock == DeployLock(
        owner="ci-1234",
        reason="serving stack at abc123",
        acquired_at=clock.now,
        expires_at=clock.now + timedelta(seconds=900),
    )
    assert lock.current() == lease.lock
    clock.advance(899)
    with pytest.raises(DeployLockHeldError) as refused:
        lock.acquire("alice", "hotfix", ttl_seconds=900)

    assert refused.value.code == "deploy_lock_held"
    message = refused.value.message
    assert "ci-1234" in message and "serving stack at abc123" in message
    assert "since 2025-03-01 12:00:00 UTC" in message and "until 2025-03-01 12:15:00 UTC" in message
    assert lock.current() == lease.lock


def test_an_expired_deploy_lock_is_taken_over_and_the_old_lease_cannot_release_it(
    lock: S3DeployLock, clock: FakeClock
) -> None:
    first = lock.acquire("ci-1", "deploy", ttl_seconds=60)
    clock.advance(60)

    assert lock.current() is None
    second = lock.acquire("ci-2", "deploy again", ttl_seconds=60)

    assert (second.lock.owner, second.lock.acquired_at) == ("ci-2", clock.now)
    assert second.etag != first.etag
    assert lock.release(first) is False
    assert lock.current() == second.lock
    assert lock.release(second) is True
    assert lock.current() is None
    assert lock.release(second) is False


def test_a_released_deploy_lock_can_be_taken_again_at_once(lock: S3DeployLock, clock: FakeClock) -> None:
    first = lock.acquire("ci-1", "deploy", ttl_seconds=600)
    assert lock.release(first) is True
    clock.advance(1)

    again = lock.acquire("ci-2", "deploy", ttl_seconds=600)

    assert lock.current() == again.lock


def test_an_unreadable_deploy_lock_counts_as_expired_and_is_taken_over(aws: Any, lock: S3DeployLock) -> None:
    aws.put_object(Bucket=CFG.registry_bucket, Key=DEPLOY_LOCK_KEY, Body=b"not a lock")

    assert lock.current() is None
    lease = lock.acquire("ci-1", "deploy", ttl_seconds=60)

    assert lock.current() == lease.lock


def test_a_deploy_lock_needs_a_positive_ttl(lock: S3DeployLock) -> None:
    with pytest.raises(ValueError, match="ttl_seconds"):
        lock.acquire("ci-1", "deploy", ttl_seconds=0)
    assert lock.current() is None


# -- the controller under the lock ------------------------------------------------------------------------------
def deploy_lock_of(rollout_world: World) -> S3DeployLock:
    assert rollout_world.ports.deploy_lock is not None  # the handler's own wiring gives it one
    return rollout_world.ports.deploy_lock


def test_a_held_deploy_lock_keeps_a_pending_canary_from_starting_until_it_is_released(rollout_world: World) -> None:
    rollout_world.train_challenger()
    lease = deploy_lock_of(rollout_world).acquire("ci-1234", "serving stack at abc123", ttl_seconds=900)

    held = rollout_world.tick()

    assert held.action == "hold"
    assert "deploy lock" in held.reason and "ci-1234" in held.reason and "serving stack at abc123" in held.reason
    assert rollout_world.state().status == "pending"
    assert rollout_world.routing().weights == {}
    assert rollout_world.lambda_versions() == ["1"]
    assert rollout_world.alarms() == []

    assert deploy_lock_of(rollout_world).release(lease)
    started = rollout_world.tick()

    assert (started.action, started.state.status) == ("start", "canary")
    assert rollout_world.routing().weights == {"2": 0.1}


def test_a_held_deploy_lock_keeps_a_running_canary_where_it_is_until_it_is_released(rollout_world: World) -> None:
    rollout_world.train_challenger()
    rollout_world.tick()
    rollout_world.send(REQUESTS)
    lease = deploy_lock_of(rollout_world).acquire("ci-1234", "serving stack", ttl_seconds=900)

    held = rollout_world.tick()

    assert held.action == "hold" and "ci-1234" in held.reason
    assert rollout_world.routing().weights == {"2": 0.1}
    state = rollout_world.state()
    assert (state.status, state.stage_index, state.weight, state.stage_figures) == ("canary", 0, 0.1, [])

    deploy_lock_of(rollout_world).release(lease)
    advanced = rollout_world.tick()

    assert (advanced.action, advanced.state.weight) == ("advance", 0.5)
    assert rollout_world.routing().weights == {"2": 0.5}


def test_an_expired_deploy_lock_does_not_hold_the_controller(rollout_world: World) -> None:
    rollout_world.train_challenger()
    long_ago = S3DeployLock(
        rollout_world.clients.s3, CFG.registry_bucket, clock=lambda: datetime.now(UTC) - timedelta(hours=2)
    )
    long_ago.acquire("ci-dead", "a deploy that died", ttl_seconds=60)

    started = rollout_world.tick()

    assert started.action == "start"
    assert rollout_world.routing().weights == {"2": 0.1}


def test_a_step_found_pending_is_finished_under_the_deploy_lock(rollout_world: World) -> None:
    rollout_world.train_challenger()
    rollout_world.tick()
    rollout_world.send(REQUESTS)
    rollout_world.store.crash = (1, "after")  # the advance is written to the state, the alias not moved yet
    with pytest.raises(ControllerCrash):
        rollout_world.tick()
    assert rollout_world.routing().weights == {"2": 0.1}
    deploy_lock_of(rollout_world).acquire("ci-1234", "serving stack", ttl_seconds=900)

    finished = rollout_world.tick()

    assert finished.action == "advance" and finished.reason.startswith("finished the step")
    assert rollout_world.routing().weights == {"2": 0.5}
    assert rollout_world.state().pending is None
    rollout_world.send(REQUESTS)  # the 50% stage's traffic: without the lock, the next tick would promote
    after = rollout_world.tick()
    assert after.action == "hold" and "deploy lock" in after.reason
    assert rollout_world.routing().weights == {"2": 0.5}


def test_an_operator_rollback_ends_the_canary_under_the_deploy_lock(rollout_world: World) -> None:
    rollout_world.train_challenger()
    rollout_world.tick()
    deploy_lock_of(rollout_world).acquire("ci-1234", "serving stack", ttl_seconds=900)

    result = rollout.rollback(rollout_world.ports, NAME, "code deployment")

    assert (result.action, result.state.status) == ("rollback", "rolled_back")
    assert (rollout_world.routing().stable_version, rollout_world.routing().weights) == ("1", {})
    assert rollout_world.registry.get_aliases(NAME) == {"champion": 1}


def test_an_operator_promotion_ends_the_canary_under_the_deploy_lock(rollout_world: World) -> None:
    rollout_world.train_challenger()
    rollout_world.tick()
    deploy_lock_of(rollout_world).acquire("ci-1234", "serving stack", ttl_seconds=900)

    result = rollout.promote(rollout_world.ports, NAME, rollout_world.policy)

    assert (result.action, result.state.status) == ("promote", "promoted")
    assert (rollout_world.routing().stable_version, rollout_world.routing().weights) == ("2", {})
    assert rollout_world.registry.get_aliases(NAME) == {"champion": 2, "previous": 1}


# -- CodeDeploy ---------------------------------------------------------------------------------------------
def create_deployment_group(codedeploy: Any, application: str = APPLICATION, group: str = GROUP) -> None:
    if application not in codedeploy.list_applications()["applications"]:
        codedeploy.create_application(applicationName=application, computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName=application,
        deploymentGroupName=group,
        serviceRoleArn="arn:aws:iam::123456789012:role/codedeploy",
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    )


def create_deployment(codedeploy: Any, application: str = APPLICATION, group: str = GROUP) -> str:
    revision = {"revisionType": "AppSpecContent", "appSpecContent": {"content": "version: 0.0"}}
    return str(
        codedeploy.create_deployment(applicationName=application, deploymentGroupName=group, revision=revision)[
            "deploymentId"
        ]
    )


def finish_deployment(deployment_id: str) -> None:
    """moto leaves a deployment 'Created' for ever (it has no StopDeployment either): end it as CodeDeploy would."""
    backend = codedeploy_backends[DEFAULT_ACCOUNT_ID][CFG.region]
    backend.deployments[deployment_id].status = "Succeeded"


def test_the_watcher_lists_only_the_unfinished_deployments_of_its_group(
    aws: Any, boto_session: boto3.session.Session
) -> None:
    codedeploy = boto_session.client("codedeploy")
    create_deployment_group(codedeploy)
    create_deployment_group(codedeploy, group="another-group")
    watcher = CodeDeployWatcher(codedeploy, APPLICATION, GROUP)
    assert watcher.in_progress() == []

    ours, done = create_deployment(codedeploy), create_deployment(codedeploy)
    create_deployment(codedeploy, group="another-group")
    finish_deployment(done)

    assert watcher.in_progress() == [ours]


def test_a_code_deployment_in_progress_keeps_a_pending_canary_from_starting(rollout_world: World) -> None:
    values = {k.lower(): v for k, v in function_environment(CFG, "rollout").items()}
    settings = RolloutSettings.model_validate(
        {**values, "codedeploy_application": APPLICATION, "codedeploy_deployment_group": GROUP}
    )
    assert rollout_world.ports.deployments is None  # function_environment does not name a deployment group
    watcher = build_ports(settings, rollout_world.clients, CFG.metrics_namespace).deployments
    assert watcher is not None and watcher.group == f"{APPLICATION}/{GROUP}"
    rollout_world.ports.deployments = watcher
    create_deployment_group(rollout_world.clients.codedeploy)
    deployment_id = create_deployment(rollout_world.clients.codedeploy)
    rollout_world.train_challenger()

    held = rollout_world.tick()

    assert held.action == "hold" and deployment_id in held.reason and "CodeDeploy" in held.reason
    assert rollout_world.state().status == "pending"
    assert rollout_world.routing().weights == {}
    assert rollout_world.lambda_versions() == ["1"]

    finish_deployment(deployment_id)
    started = rollout_world.tick()

    assert started.action == "start"
    assert rollout_world.routing().weights == {"2": 0.1}
