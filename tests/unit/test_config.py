"""The one configuration feeds the functions' settings unchanged, whatever reads it."""

from __future__ import annotations

import pytest

from functions.config import STAGES, function_environment, stage_config
from functions.settings import LogOutcomeSettings, PredictSettings


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_predict_settings_read_back_the_stage_config(monkeypatch, stage: str):
    cfg = stage_config(stage)
    for name, value in function_environment(cfg, "predict").items():
        monkeypatch.setenv(name, value)

    settings = PredictSettings.from_environment()

    assert settings.registry_bucket == cfg.registry_bucket
    assert settings.data_bucket == cfg.data_bucket
    assert settings.model_name == cfg.model_name
    assert settings.max_batch_rows == cfg.max_batch_rows
    assert settings.max_body_bytes == cfg.max_body_bytes
    assert settings.capture_prefix == cfg.capture_prefix
    assert settings.capture_sample_rate == cfg.capture_sample_rate
    assert settings.capture_max_rows == cfg.capture_max_rows
    assert settings.capture_max_age_seconds == cfg.capture_max_age_seconds
    assert settings.model_version is None
    assert settings.model_alias == "champion"


def test_log_outcome_settings_read_back_the_stage_config(monkeypatch):
    cfg = stage_config("prod")
    for name, value in function_environment(cfg, "log_outcome").items():
        monkeypatch.setenv(name, value)

    settings = LogOutcomeSettings.from_environment()

    assert (settings.outcomes_prefix, settings.max_outcomes) == (cfg.outcomes_prefix, cfg.max_outcomes)
    assert settings.registry_bucket == "mlops-prod-registry"


def test_model_version_pin_comes_from_the_environment(monkeypatch):
    for name, value in function_environment(stage_config("local"), "predict").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MODEL_VERSION", "4")

    assert PredictSettings.from_environment().model_version == 4


@pytest.mark.parametrize(
    ("name", "value"),
    [("MODEL_VERSION", "0"), ("MAX_BATCH_ROWS", "0"), ("MAX_BODY_BYTES", "100"), ("CAPTURE_SAMPLE_RATE", "1.5")],
)
def test_settings_refuse_bad_values(monkeypatch, name: str, value: str):
    for key, val in function_environment(stage_config("local"), "predict").items():
        monkeypatch.setenv(key, val)
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError):
        PredictSettings.from_environment()


def test_settings_need_the_buckets(monkeypatch):
    with pytest.raises(ValueError):
        PredictSettings.from_environment()


def test_unknown_stage_and_function():
    with pytest.raises(KeyError, match="known stages: local, dev, prod"):
        stage_config("qa")
    with pytest.raises(KeyError, match="unknown function 'train'"):
        function_environment(stage_config("local"), "train")


def test_the_drift_thresholds_have_one_home() -> None:
    from functions.config import DriftConfig
    from functions.domain.drift_policy import DriftPolicy
    from functions.settings import DriftCheckSettings

    policy = DriftPolicy()
    for name in DriftPolicy.model_fields:
        assert getattr(DriftConfig(), name) == getattr(policy, name), name
        assert DriftCheckSettings.model_fields[name].default == getattr(policy, name), name
