"""A shift that persists leads to one retrain and one canary, not one per drift-check."""

from __future__ import annotations

import io

import pytest

from functions.config import stage_config
from functions.local.lifecycle import DRIFT, Lifecycle, Timeline, demo_config
from functions.local.runtime import LocalRuntime


@pytest.mark.usefixtures("isolated_process_state")
def test_three_drift_checks_on_persistently_shifted_traffic_retrain_once(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".mlops").mkdir()  # where the demo's acts write the drift report
    config = demo_config(stage_config("local"))  # no cooldown: only the evidence rules can hold a retrain back
    with LocalRuntime(config, log_stream=io.StringIO(), progress=lambda _m: None, seed=7) as runtime:
        acts = Lifecycle(runtime, Timeline(), seed=7)
        acts.drift()  # normal traffic, then shifted traffic: DRIFT, and the event retrains
        acts.retrain_and_promote()
        assert acts.checks["challenger promoted through 10% -> 50% -> 100%"]
        champion = acts.registry.get_card(acts.name, acts.registry.resolve(acts.name, "champion"))
        assert champion.version == 2 and champion.baseline.source == "traffic"
        assert champion.baseline.traffic_rows is not None and champion.baseline.traffic_rows >= 200

        verdicts = []
        for _ in range(2):  # the shift goes on, with outcomes, as before
            acts.traffic.send(runtime.api_url, 600, DRIFT)
            result = acts.scheduler.run("drift_check")
            verdicts.append(result["verdict"])

        versions = [card.version for card in acts.registry.list_versions(acts.name)]
        state = acts.scheduler.run("rollout")["state"]
    assert verdicts == ["NO_DRIFT", "NO_DRIFT"], "the new champion's baseline is the traffic it serves"
    assert versions == [1, 2], "one retrain for one shift"
    assert state["status"] == "promoted" and state["challenger_version"] == 2
