"""``make deploy``'s side of taking turns with model canaries, against moto (its CodeDeploy never shifts an alias).

The deploy finds the stage by its storage exports (a CloudFormation stack in moto exports the local
stage's bucket names), waits for a running canary or ends it as asked, holds the deploy lock in the
registry bucket while the CDK CLI runs (here a recorder of the command, run while the lock is held),
pins predict to the champion, and releases the lock.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from functions.adapters.locks import S3DeployLock
from functions.services import rollout
from infra.deploy import DeployError, DeployOptions, deploy
from tests.integration.test_rollout import CFG, NAME, REQUESTS, World, world  # noqa: F401 - the fixture

LOCAL = DeployOptions(stage="local", approval="never", wait_seconds=600.0)


@pytest.fixture
def stage_world(world: World) -> World:  # noqa: F811 - test_rollout's world: champion v1 serving, a controller
    return world


def export_storage(stage_world: World) -> None:
    """The local stage's storage stack, as far as the deploy looks at it: its exports."""
    outputs = {
        f"Out{i}": {"Value": value, "Export": {"Name": CFG.export_name(what)}}
        for i, (what, value) in enumerate(
            (("registry-bucket-name", CFG.registry_bucket), ("data-bucket-name", CFG.data_bucket))
        )
    }
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}, "Outputs": outputs}
    stage_world.clients.client("cloudformation").create_stack(
        StackName=CFG.resource_name("storage"), TemplateBody=json.dumps(template)
    )


class Cdk:
    """Stands where the CDK CLI runs: records the command, what the lock and a tick look like meanwhile."""

    def __init__(self, stage_world: World) -> None:
        self.stage_world = stage_world
        self.commands: list[list[str]] = []
        self.lock_owners: list[str | None] = []
        self.ticks: list[rollout.TickResult] = []

    def __call__(self, args: Sequence[str]) -> int:
        self.commands.append(list(args))
        held = S3DeployLock(self.stage_world.clients.s3, CFG.registry_bucket).current()
        self.lock_owners.append(held.owner if held is not None else None)
        self.ticks.append(self.stage_world.tick())
        return 0


def test_a_deploy_holds_the_lock_while_cdk_runs_pins_the_champion_and_releases_it(stage_world: World) -> None:
    export_storage(stage_world)
    stage_world.train_challenger()  # a canary is requested: the controller must not start it mid-deploy
    cdk = Cdk(stage_world)

    assert deploy(LOCAL, clients=stage_world.clients, run=cdk) == 0

    (command,) = cdk.commands
    assert command[:2] == ["deploy", "--all"] and "champion=1" in command and "stage=local" in command
    assert command[command.index("--require-approval") + 1] == "never"
    assert cdk.lock_owners == ["make deploy"]
    (held,) = cdk.ticks
    assert held.action == "hold" and "deploy lock" in held.reason
    assert stage_world.routing().weights == {}
    assert S3DeployLock(stage_world.clients.s3, CFG.registry_bucket).current() is None
    assert stage_world.tick().action == "start"  # released: the pending canary starts on the next tick


def test_a_deploy_waits_for_a_running_canary_to_end(stage_world: World) -> None:
    export_storage(stage_world)
    stage_world.train_challenger()
    assert stage_world.tick().action == "start"
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # meanwhile, the canary ends (an operator promotes it)
        waits.append(seconds)
        rollout.promote(stage_world.ports, NAME, stage_world.policy)

    cdk = Cdk(stage_world)
    assert deploy(LOCAL, clients=stage_world.clients, run=cdk, sleep=sleep) == 0

    assert len(waits) == 1 and "champion=2" in cdk.commands[0]
    assert cdk.lock_owners == ["make deploy"]


def test_a_paused_canary_is_refused_with_what_to_do(stage_world: World) -> None:
    export_storage(stage_world)
    stage_world.train_challenger()
    stage_world.tick()
    rollout.pause(stage_world.ports, NAME)
    cdk = Cdk(stage_world)

    with pytest.raises(DeployError, match="paused and never ends by itself.*CANARY=promote or CANARY=rollback"):
        deploy(LOCAL, clients=stage_world.clients, run=cdk, sleep=lambda _: pytest.fail("waited"))

    assert cdk.commands == [] and S3DeployLock(stage_world.clients.s3, CFG.registry_bucket).current() is None


@pytest.mark.parametrize(("action", "champion"), [("rollback", 1), ("promote", 2)])
def test_a_deploy_asked_to_end_the_canary_does_so_under_the_lock_first(
    stage_world: World, action: Any, champion: int
) -> None:
    export_storage(stage_world)
    stage_world.train_challenger()
    stage_world.tick()
    stage_world.send(REQUESTS)
    cdk = Cdk(stage_world)
    options = DeployOptions(stage="local", approval="broadening", canary=action)

    assert deploy(options, clients=stage_world.clients, run=cdk) == 0

    assert stage_world.state().status == ("rolled_back" if action == "rollback" else "promoted")
    assert stage_world.routing().weights == {}
    assert f"champion={champion}" in cdk.commands[0] and "broadening" in cdk.commands[0]


def test_a_first_deploy_has_no_registry_to_lock_and_pins_no_champion(stage_world: World) -> None:
    cdk = Cdk(stage_world)

    assert deploy(LOCAL, clients=stage_world.clients, run=cdk) == 0

    assert "champion=none" in cdk.commands[0] and cdk.lock_owners == [None]
