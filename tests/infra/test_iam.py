"""Least privilege, read from the synthesized policies: who may read or write what."""

from __future__ import annotations

import pytest

from infra.naming import function_name
from infra.settings import FUNCTIONS

from .policies import Statement, function_roles, may, role_statements
from .synthesis import Synthesized

MODEL = "breast-cancer"


@pytest.fixture
def roles(synth: Synthesized, stage: str, stage_settings) -> dict[str, list[Statement]]:
    """Function key ('predict', ...) -> the Allow statements of its role."""
    config, _ = stage_settings[stage]
    out = {}
    for role in ("serving", "monitoring"):
        template = synth.json(stage, role)
        for name, role_id in function_roles(template).items():
            key = next(k for k in FUNCTIONS if function_name(config, k) == name)
            out[key] = role_statements(template, role_id)
    assert set(out) == set(FUNCTIONS)
    return out


@pytest.fixture
def objects(stage: str, stage_settings):
    """objects('registry', 'models/x') -> the ARN pattern policies use for that key."""
    config, _ = stage_settings[stage]

    def arn(bucket: str, key: str) -> str:
        return f"{config.export_name(f'{bucket}-bucket-arn')}/{key}"

    return arn


def holders(roles: dict[str, list[Statement]], action: str, resource: str) -> set[str]:
    return {key for key, statements in roles.items() if may(statements, action, resource)}


def test_each_function_has_its_own_role(synth: Synthesized, stage: str):
    seen: set[str] = set()
    for role in ("serving", "monitoring"):
        for role_id in function_roles(synth.json(stage, role)).values():
            assert role_id not in seen
            seen.add(role_id)
    assert len(seen) == len(FUNCTIONS)


def test_no_function_has_wildcard_actions(roles):
    for key, statements in roles.items():
        for statement in statements:
            assert not any("*" in action for action in statement.actions), (key, statement)


def test_predict_reads_models_and_writes_capture_only(roles, objects):
    predict = roles["predict"]
    artifact = objects("registry", f"models/{MODEL}/versions/3/model.onnx")
    assert may(predict, "s3:GetObject", artifact)
    assert not may(predict, "s3:PutObject", artifact)
    assert not may(predict, "s3:PutObject", objects("registry", f"models/{MODEL}/aliases.json"))
    assert not may(predict, "s3:DeleteObject", artifact)
    assert may(predict, "s3:PutObject", objects("data", f"capture/{MODEL}/2026/11/23/x.jsonl.gz"))
    for key in ("outcomes/x", "datasets/x.csv", "reports/drift/x.json"):
        assert not may(predict, "s3:PutObject", objects("data", key))
        assert not may(predict, "s3:GetObject", objects("data", key))
    assert not may(predict, "s3:GetObject", objects("registry", "locks/retrain/x.json"))


def test_only_retrain_registers_models(roles, objects):
    for key in (
        f"models/{MODEL}/versions/7/model.onnx",
        f"models/{MODEL}/versions/7/model.skops",
        f"models/{MODEL}/versions/7/card.json",
    ):
        assert holders(roles, "s3:PutObject", objects("registry", key)) == {"retrain"}
    assert holders(roles, "s3:PutObject", objects("registry", f"models/{MODEL}/aliases.json")) == {"retrain", "rollout"}
    assert holders(roles, "s3:PutObject", objects("registry", "locks/retrain/x.json")) == {"retrain"}
    assert holders(roles, "s3:DeleteObject", objects("registry", "locks/retrain/x.json")) == {"retrain"}
    assert holders(roles, "s3:PutObject", objects("registry", f"rollouts/{MODEL}/state.json")) == {"retrain", "rollout"}


def test_only_rollout_moves_the_alias_or_publishes_versions(roles, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    function = f"arn:aws:lambda:{config.region}:<AWS::AccountId>:function:{config.predict_function_name}"
    for action in ("lambda:UpdateAlias", "lambda:PublishVersion", "lambda:UpdateFunctionConfiguration"):
        assert holders(roles, action, function) == {"rollout"}, action
        assert holders(roles, action, f"{function}:{config.rollout.alias_name}") == {"rollout"}, action
    other = f"arn:aws:lambda:{config.region}:<AWS::AccountId>:function:{function_name(config, 'retrain')}"
    assert holders(roles, "lambda:UpdateFunctionConfiguration", other) == set()


def test_rollout_manages_only_canary_alarms(roles, synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    (rollout,) = [
        r["Properties"]
        for r in synth.resources(stage, "monitoring", "AWS::Lambda::Function").values()
        if r["Properties"]["FunctionName"] == function_name(config, "rollout")
    ]
    prefix = rollout["Environment"]["Variables"]["CANARY_ALARM_PREFIX"]  # what the controller names its alarms by
    assert prefix == config.canary_alarm_prefix
    alarm = f"arn:aws:cloudwatch:{config.region}:<AWS::AccountId>:alarm:"
    canary = f"{alarm}{prefix}-{MODEL}-v4-errors"
    assert holders(roles, "cloudwatch:PutMetricAlarm", canary) == {"rollout"}
    assert holders(roles, "cloudwatch:DeleteAlarms", canary) == {"rollout"}
    assert holders(roles, "cloudwatch:DeleteAlarms", f"{alarm}{config.resource_name('predict-errors')}") == set()


def test_drift_check_writes_reports_and_publishes_events_only(roles, objects, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    drift = roles["drift_check"]
    assert may(drift, "s3:PutObject", objects("data", f"{config.drift.reports_prefix}/{MODEL}/r.json"))
    assert may(drift, "s3:GetObject", objects("data", f"{config.capture_prefix}/{MODEL}/x"))
    assert not may(drift, "s3:PutObject", objects("data", f"{config.capture_prefix}/{MODEL}/x"))
    aggregate = objects("data", f"{config.drift.aggregates_prefix}/{MODEL}/dt=2026-01-01/hour=00/aggregate.json")
    assert all(may(drift, action, aggregate) for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"))
    assert not may(drift, "s3:DeleteObject", objects("data", f"{config.capture_prefix}/{MODEL}/x"))
    assert not may(drift, "s3:DeleteObject", objects("data", f"{config.drift.reports_prefix}/{MODEL}/r.json"))
    assert not any(may(drift, "s3:PutObject", objects("registry", k)) for k in ("models/x", "locks/x", "rollouts/x"))
    publishers = {key for key, st in roles.items() if any("events:PutEvents" in s.actions for s in st)}
    assert publishers == {"drift_check", "retrain", "rollout"}


def test_kms_is_used_only_through_s3(synth: Synthesized, stage: str):
    for role in ("serving", "monitoring"):
        for policy in synth.resources(stage, role, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                if any(a.startswith("kms:") for a in actions):
                    assert "kms:ViaService" in statement["Condition"]["StringEquals"]


def test_codedeploy_is_the_only_other_principal_that_shifts_the_alias(synth: Synthesized, stage: str):
    roles = synth.resources(stage, "serving", "AWS::IAM::Role")
    managed = {k: [str(p) for p in r["Properties"].get("ManagedPolicyArns", [])] for k, r in roles.items()}
    with_codedeploy = [k for k, arns in managed.items() if any("AWSCodeDeployRoleForLambdaLimited" in a for a in arns)]
    assert len(with_codedeploy) == 1
    assert roles[with_codedeploy[0]]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {
        "Service": "codedeploy.amazonaws.com"
    }
