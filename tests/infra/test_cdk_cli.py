"""The pinned CDK CLI reads what this app synthesizes: ``cdk ls`` and ``cdk synth`` through cdk.json, offline.

The CLI is installed once into a cache (``infra.deploy.cli_cache``) with notices, telemetry and the
version check off. A CLI that cannot read aws-cdk-lib's cloud assembly schema fails here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.assets import REPO
from infra.deploy import CDK_CLI_VERSION, cdk_cli, cdk_environment

from .synthesis import STAGES, make_asset_dirs


@pytest.fixture(scope="module")
def cli() -> Path:
    return cdk_cli()


def _run(cli: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cli), *args, "--no-notices"],
        check=False,
        cwd=REPO,
        env=cdk_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_the_cached_cli_is_the_pinned_version(cli: Path) -> None:
    done = _run(cli, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(CDK_CLI_VERSION)


@pytest.mark.parametrize("stage", STAGES)
def test_cdk_ls_and_synth_through_cdk_json_read_the_stage_asked_for(cli: Path, stage: str, tmp_path: Path) -> None:
    assets = make_asset_dirs(tmp_path / "assets")
    context = ["-c", f"stage={stage}", "-c", f"asset_dirs={assets.function.parent}"]

    listed = _run(cli, "ls", *context, "--output", str(tmp_path / "ls.out"))
    synthesized = _run(cli, "synth", *context, "--quiet", "--output", str(tmp_path / "cdk.out"))

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [f"mlops-{stage}-{role}" for role in ("storage", "serving", "monitoring")]
    assert synthesized.returncode == 0, synthesized.stderr
    manifest = json.loads((tmp_path / "cdk.out" / "manifest.json").read_text())
    stacks = {k for k, v in manifest["artifacts"].items() if v["type"] == "aws:cloudformation:stack"}
    assert stacks == {f"mlops-{stage}-{role}" for role in ("storage", "serving", "monitoring")}
    assert "note: no champion given" in synthesized.stderr  # the predict version's pin is said, not hidden


def test_the_app_through_cdk_json_stops_without_a_stage(cli: Path, tmp_path: Path) -> None:
    done = _run(cli, "ls", "--output", str(tmp_path / "out"))
    assert done.returncode != 0
    assert "say which stage to synthesize" in done.stderr
