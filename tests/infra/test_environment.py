"""Each function gets what its settings model requires, and the values the local runtime would give it."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from functions.config import function_environment
from functions.settings import (
    DriftCheckSettings,
    LogOutcomeSettings,
    PredictSettings,
    RetrainSettings,
    RolloutSettings,
)
from infra.nag import flatten_reference
from infra.naming import code_deploy_names, function_name
from infra.settings import FUNCTIONS

from .synthesis import Synthesized

SETTINGS: dict[str, type[BaseModel]] = {
    "predict": PredictSettings,
    "log_outcome": LogOutcomeSettings,
    "drift_check": DriftCheckSettings,
    "retrain": RetrainSettings,
    "rollout": RolloutSettings,
}
# Set from resources the stacks create; every other variable is function_environment's value verbatim.
DEPLOYED = {"REGISTRY_BUCKET", "DATA_BUCKET", "EVENT_BUS_NAME"}


@pytest.fixture
def environments(synth: Synthesized, stage: str, stage_settings) -> dict[str, dict[str, Any]]:
    config, _ = stage_settings[stage]
    names = {function_name(config, key): key for key in FUNCTIONS}
    return {
        names[r["Properties"]["FunctionName"]]: r["Properties"]["Environment"]["Variables"]
        for role in ("serving", "monitoring")
        for r in synth.resources(stage, role, "AWS::Lambda::Function").values()
    }


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_required_setting_is_set(environments, function: str):
    model = SETTINGS[function]
    required = {name.upper() for name, field in model.model_fields.items() if field.is_required()}
    assert required, f"{model.__name__} requires nothing?"
    assert required <= set(environments[function]), required - set(environments[function])


@pytest.mark.parametrize("function", FUNCTIONS)
def test_environment_is_the_shared_configuration_with_deployed_names(environments, stage, stage_settings, function):
    config, _ = stage_settings[stage]
    shared = function_environment(config, function)
    deployed = environments[function]
    for name, value in shared.items():
        if name in DEPLOYED:
            assert deployed[name] != value, f"{name} must name the deployed resource, not the local one"
        else:
            assert deployed[name] == value, name
    assert flatten_reference(deployed["REGISTRY_BUCKET"]) == config.resource_name("registry-bucket-name")
    assert flatten_reference(deployed["DATA_BUCKET"]) == config.resource_name("data-bucket-name")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_settings_models_accept_the_deployed_environment(environments, monkeypatch, function: str):
    for name, value in environments[function].items():
        monkeypatch.setenv(name, value if isinstance(value, str) else flatten_reference(value))
    SETTINGS[function]()  # raises if a value does not parse


def test_rollout_knows_the_predict_function_topic_and_code_deployment(environments, synth, stage, stage_settings):
    config, _ = stage_settings[stage]
    rollout = environments["rollout"]
    assert rollout["PREDICT_FUNCTION_NAME"] == function_name(config, "predict") == config.predict_function_name
    (topic_id,) = synth.resources(stage, "monitoring", "AWS::SNS::Topic")
    assert rollout["ALARM_TOPIC_ARN"] == {"Ref": topic_id}
    assert (rollout["CODEDEPLOY_APPLICATION"], rollout["CODEDEPLOY_DEPLOYMENT_GROUP"]) == code_deploy_names(config)
    (bus_id,) = synth.resources(stage, "monitoring", "AWS::Events::EventBus")
    for function in ("drift_check", "retrain", "rollout"):
        assert environments[function]["EVENT_BUS_NAME"] == {"Ref": bus_id}
