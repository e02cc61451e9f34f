"""cdk-nag (AWS Solutions and Serverless) and cfn-lint on the synthesized stacks, and CDK's own messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from aws_cdk import App

from infra.app import add_stage, feature_flags
from infra.assets import AssetDirs
from infra.nag import RECORD_ONLY, acknowledged, rule_packs

from .synthesis import STAGES, Synthesized


def _findings(app: App) -> list[tuple[str, str, str]]:
    """(severity, finding id, construct path) of every finding the packs report on ``app``."""
    return sorted(
        (v.severity, v.rule_name, r.construct_path or "?")
        for pack in rule_packs(app)
        for v in pack.validate_scope(app).violations
        for r in v.violating_resources
    )


def test_synthesis_passed_the_rule_packs(synth: Synthesized):
    assert synth.validation_error is None, synth.validation_error
    assert _findings(synth.app) == []


def test_every_acknowledgment_matches_a_finding(asset_dirs: AssetDirs):
    """Built again without applying acknowledgments: each finding is acknowledged, each acknowledgment is used."""
    app = App(context={**feature_flags(), RECORD_ONLY: True})
    for stage in STAGES:
        add_stage(app, stage, asset_dirs)
    findings = _findings(app)
    acks = acknowledged(app)
    assert findings, "the packs found nothing to acknowledge: are they running?"
    open_findings = [f for f in findings if not any(a.covers(f[2], f[1]) for a in acks)]
    unused = [a for a in acks if not any(a.covers(path, rule) for _, rule, path in findings)]
    assert open_findings == []
    assert unused == []
    for ack in acks:
        assert len(ack.reason) >= 40, ack


def test_cfn_lint_finds_no_errors(synth: Synthesized):
    templates = synth.template_files()
    assert len(templates) == 3 * len(STAGES)
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", "--format", "parseable", *map(str, templates)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ":E" in line or line.split(":")[-2:-1] == ["E"]]
    assert result.returncode == 0, result.stdout + result.stderr
    assert errors == []


def test_cdk_reported_no_errors_or_warnings(synth: Synthesized):
    messages = []
    for path in synth.outdir.glob("*.metadata.json"):
        for construct, entries in json.loads(path.read_text()).items():
            messages += [
                (construct, e["type"], e.get("data"))
                for e in entries
                if e["type"] in ("aws:cdk:error", "aws:cdk:warning")
            ]
    assert messages == []
