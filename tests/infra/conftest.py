"""Infra tier: every test here is marked ``infra``; the CDK app is synthesized once per session.

The session builds one app holding the dev and prod stacks, with the cdk-nag packs registered as
``make synth`` registers them, and synthesizes it once into a temporary cloud assembly. Template
assertions do not depend on what the Lambda assets contain, only on each asset being a directory
with the layout ``make layer`` writes; so the session points the app at a tiny placeholder layer
and function package made here (``asset_dirs``), and never needs ``make layer`` or Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# jsii warns on every start that this machine's Node 20 is past its end of life; the warning is
# for operators (infra/README.md), not for every test run.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import Stack  # noqa: E402 - after the environment jsii reads at start

from functions.config import StageConfig  # noqa: E402
from infra.app import build_app  # noqa: E402
from infra.assets import AssetDirs  # noqa: E402
from infra.settings import InfraSettings, infra_settings  # noqa: E402

from .synthesis import ROLES, STAGES, Synthesized, make_asset_dirs  # noqa: E402

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/infra with the ``infra`` tier (tests/conftest.py marks the others)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def asset_dirs(tmp_path_factory: pytest.TempPathFactory) -> AssetDirs:
    return make_asset_dirs(tmp_path_factory.mktemp("assets"))


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory, asset_dirs: AssetDirs) -> Iterator[Synthesized]:
    """Dev and prod synthesized once, into one cloud assembly, with the cdk-nag packs as ``make synth`` runs them.

    A validation failure (an unacknowledged cdk-nag finding) is kept, not raised: the assembly is
    still written, so the other tests run and ``test_checks`` reports the findings.
    """
    outdir = tmp_path_factory.mktemp("cdk.out")
    app = build_app(STAGES, asset_dirs, outdir=str(outdir))
    stacks = {
        (stage, role): Stack.of(app.node.find_child(infra_settings(stage)[0].resource_name(role)))
        for stage in STAGES
        for role in ROLES
    }
    error = None
    try:
        app.synth()
    except RuntimeError as exc:
        error = str(exc)
    yield Synthesized(app=app, stacks=stacks, outdir=outdir, validation_error=error)


@pytest.fixture(scope="session")
def stage_settings() -> dict[str, tuple[StageConfig, InfraSettings]]:
    return {stage: infra_settings(stage) for stage in STAGES}


@pytest.fixture(params=STAGES)
def stage(request: pytest.FixtureRequest) -> str:
    return str(request.param)
