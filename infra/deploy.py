"""``make bootstrap`` and ``make deploy``: the pinned CDK CLI, and a deploy that takes turns with model canaries.

    python -m infra.deploy cdk -- ls -c stage=dev        # the pinned CLI (installed once into a cache)
    python -m infra.deploy bootstrap --stage prod
    python -m infra.deploy deploy --stage prod [--approval never] [--canary wait|promote|rollback]

A deploy of a deployed stage takes the deploy lock in the registry bucket (the rollout controller
starts no canary and makes no step while it is held), after a running model canary has ended; with
``--canary promote`` or ``rollback`` it ends the canary itself first. It pins the predict version CDK
publishes to the registry's champion (``-c champion=N``), runs ``cdk deploy``, and releases the lock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from functions.config import NO_CHAMPION, StageConfig, stage_config
from functions.errors import MlopsError
from infra.assets import REPO

CDK_CLI_VERSION = "2.1148.1"  # reads aws-cdk-lib 2.275's cloud assemblies (schema 55); 3.x cannot
APPROVALS = ("never", "broadening", "any-change")
DEFAULT_APPROVAL = {"dev": "never", "prod": "broadening"}
CanaryAction = Literal["wait", "promote", "rollback"]
POLL_SECONDS = 30.0


class DeployError(RuntimeError):
    """The deploy cannot go on; the message says what to do."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the pinned CLI ------------------------------------------------------------------------------------
def cli_cache() -> Path:
    """Where the pinned CLI is installed once: ``$MLOPS_CDK_CLI_CACHE``, else ``~/.cache/mlops/aws-cdk-<version>``."""
    configured = os.environ.get("MLOPS_CDK_CLI_CACHE")
    base = Path(configured) if configured else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlops"
    return base / f"aws-cdk-{CDK_CLI_VERSION}"


def cdk_environment() -> dict[str, str]:
    """The CLI's environment: no telemetry, no version check, no jsii warning about this Node."""
    return {
        **os.environ,
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "CDK_DISABLE_VERSION_CHECK": "true",
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }


def cdk_cli() -> Path:
    """The pinned CLI's executable, installed with npm into ``cli_cache()`` the first time (no global install)."""
    root = cli_cache()
    executable = root / "node_modules" / ".bin" / "cdk"
    if not executable.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise DeployError("npm not found: the CDK CLI needs Node.js (22 or 24) and npm")
        say(f"installing aws-cdk@{CDK_CLI_VERSION} into {root} (once)")
        root.mkdir(parents=True, exist_ok=True)
        command = [npm, "install", "--no-audit", "--no-fund", "--prefix", str(root), f"aws-cdk@{CDK_CLI_VERSION}"]
        done = subprocess.run(command, stdout=sys.stderr, check=False)
        if done.returncode != 0 or not executable.exists():
            raise DeployError(f"installing aws-cdk@{CDK_CLI_VERSION} failed (npm exited {done.returncode})")
    return executable


def run_cdk(args: Sequence[str]) -> int:
    """Run the pinned CLI from the repository (so ``cdk.json`` applies), notices off; its exit status."""
    command = [str(cdk_cli()), *args, "--no-notices"]
    say("$ cdk " + " ".join(args))
    return subprocess.run(command, cwd=REPO, env=cdk_environment(), check=False).returncode


# -- a deploy that takes turns with model canaries -----------------------------------------------------
@dataclass
class DeployOptions:
    stage: str
    approval: str
    canary: CanaryAction = "wait"
    wait_seconds: float = 3600.0
    lock_seconds: float = 3600.0
    owner: str = "make deploy"


def deploy_args(config: StageConfig, options: DeployOptions, champion: str) -> list[str]:
    return [
        "deploy",
        "--all",
        "-c",
        f"stage={config.stage}",
        "-c",
        f"champion={champion}",
        "--require-approval",
        options.approval,
    ]


def take_turn(
    deployed: StageConfig,
    clients: Any,
    options: DeployOptions,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Take the deploy lock once no model canary runs (ending it first with ``promote``/``rollback``).

    Returns:
        The lock's lease, to release after the deploy.

    Raises:
        DeployError: a paused canary (it never ends by itself), or the wait ran out.
    """
    from functions.adapters.locks import S3DeployLock
    from functions.local.cli import rollout_function
    from functions.services import rollout

    controller = rollout_function(deployed, clients)
    ports, name = controller.ports, deployed.model_name
    lock = S3DeployLock(clients.s3, deployed.registry_bucket)
    deadline = clock() + options.wait_seconds
    while True:
        state = ports.store.load(name)[0]
        if state.status == "canary" and options.canary == "wait":
            running = (
                f"the canary of {name} v{state.challenger_version} (stage {state.stage_index + 1}, {state.weight:.0%})"
            )
            if state.paused:
                raise DeployError(
                    f"{running} is paused and never ends by itself: resume it (`mlops --stage {deployed.stage} resume"
                    " --aws`), or deploy with CANARY=promote or CANARY=rollback to end it first"
                )
            if clock() >= deadline:
                raise DeployError(f"{running} still runs after {options.wait_seconds:.0f} s; deploy again later")
            say(f"waiting for {running} to end; looking again in {POLL_SECONDS:.0f} s")
            sleep(POLL_SECONDS)
            continue
        lease = lock.acquire(options.owner, f"deploying stage {deployed.stage}", options.lock_seconds)
        say(f"deploy lock taken in s3://{deployed.registry_bucket}: the rollout controller makes no step meanwhile")
        state = ports.store.load(name)[0]
        if state.status != "canary":
            return lease
        if options.canary == "wait":  # it started just before the lock: let it run, then try again
            lock.release(lease)
            continue
        reason = f"ended for a code deployment of stage {deployed.stage}"
        try:
            if options.canary == "promote":
                result = rollout.promote(ports, name, controller.policy)
            else:
                result = rollout.rollback(ports, name, reason)
        except BaseException:
            lock.release(lease)  # nothing was deployed: the controller goes on at once
            raise
        say(f"canary of v{state.challenger_version}: {result.action} ({result.reason})")
        return lease


def deploy(
    options: DeployOptions,
    *,
    clients: Any | None = None,
    run: Callable[[Sequence[str]], int] = run_cdk,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The whole deploy of ``options.stage``; the CLI's exit status."""
    from functions.adapters.registry import S3ModelRegistry
    from functions.bootstrap import AwsClients
    from functions.local.cli import find_deployed

    config = stage_config(options.stage)
    clients = clients or AwsClients()
    deployed = find_deployed(clients, config)
    if deployed is None:
        say(
            f"stage {config.stage} is not deployed here yet: first deploy, no registry to lock or read; predict is"
            f" pinned to '{NO_CHAMPION}' (503) until the first model is champion (`mlops --stage {config.stage}"
            " train --aws`)"
        )
        return run(deploy_args(config, options, NO_CHAMPION))
    from functions.adapters.locks import S3DeployLock

    lease = take_turn(deployed, clients, options, sleep=sleep)
    try:
        champion = (
            S3ModelRegistry(clients.s3, deployed.registry_bucket).get_aliases(deployed.model_name).get("champion")
        )
        pin = NO_CHAMPION if champion is None else str(champion)
        say(f"predict's new version is pinned to the registry's champion: {deployed.model_name} {pin}")
        return run(deploy_args(config, options, pin))
    finally:
        released = S3DeployLock(clients.s3, deployed.registry_bucket).release(lease)
        say("deploy lock released" if released else "deploy lock was no longer ours (expired and taken over)")


# -- command line ------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.deploy", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cdk = sub.add_parser("cdk", help=f"run the pinned CDK CLI (aws-cdk@{CDK_CLI_VERSION}) with the arguments after --")
    cdk.add_argument("args", nargs=argparse.REMAINDER)
    boot = sub.add_parser("bootstrap", help="cdk bootstrap the account and region of the stage's stacks")
    boot.add_argument("--stage", required=True, choices=sorted(DEFAULT_APPROVAL))
    dep = sub.add_parser("deploy", help="deploy every stack of the stage, taking turns with model canaries")
    dep.add_argument("--stage", required=True, choices=sorted(DEFAULT_APPROVAL))
    dep.add_argument(
        "--approval",
        choices=APPROVALS,
        help="cdk --require-approval (default: never for dev, broadening for prod; 'never' runs unattended)",
    )
    dep.add_argument(
        "--canary",
        choices=("wait", "promote", "rollback"),
        default="wait",
        help="a model canary running: wait for it to end (default), or promote or roll it back first",
    )
    dep.add_argument("--wait-minutes", type=float, default=60.0, help="longest wait for a canary (default 60)")
    args = parser.parse_args(argv)
    try:
        if args.command == "cdk":
            return run_cdk([a for a in args.args if a != "--"])
        if args.command == "bootstrap":
            # The app runs with the stage given, into an output of its own: cdk.out keeps what `make synth` wrote.
            return run_cdk(["bootstrap", "-c", f"stage={args.stage}", "--output", "cdk.out.bootstrap"])
        approval = args.approval or DEFAULT_APPROVAL[args.stage]
        options = DeployOptions(args.stage, approval, args.canary, wait_seconds=args.wait_minutes * 60)
        return deploy(options)
    except DeployError as exc:
        say(f"error: {exc}")
        return 1
    except MlopsError as exc:  # the lock is held by someone else, a canary command refused, AWS failed
        say(f"error: {exc.message}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
