"""The closed loop end to end on the local runtime: drift -> retrain -> canary -> promotion, then a rollback."""

from __future__ import annotations

import pytest

from functions.config import stage_config
from functions.local.lifecycle import demo_config, run_lifecycle


@pytest.mark.usefixtures("isolated_process_state")
def test_the_loop_promotes_a_retrained_model_and_rolls_back_a_bad_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demo writes its logs and report under .mlops/

    checks = run_lifecycle(demo_config(stage_config("local")), seed=7)

    assert checks == {
        "predictions served and flagged": True,
        "outcomes stored once and joined to capture": True,
        "no drift on normal traffic": True,
        "drift detected, naming the drifted features": True,
        "retrain registered a challenger": True,
        "challenger promoted through 10% -> 50% -> 100%": True,
        "bad candidate rolled back automatically": True,
    }
    report = tmp_path / ".mlops" / "drift-report.html"
    assert report.exists() and "<svg" in report.read_text()
