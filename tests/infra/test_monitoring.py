"""Monitoring stack: schedules and the model-event rule from functions/config.py, alarms to SNS, the dashboard."""

from __future__ import annotations

import json
from typing import Any

from functions.adapters.events import MODEL_DRIFT_DETECTED, MODEL_PERFORMANCE_DEGRADED
from functions.handlers.drift_check import parse_event
from functions.services.drift_hours import AGGREGATE_EVENT
from infra.naming import aggregate_rule_name, code_deploy_alarm_names, function_name, schedule_rule_name

from .synthesis import Synthesized


def _function_ids(synth: Synthesized, stage: str, config: Any) -> dict[str, str]:
    """'retrain' -> logical id of the retrain function."""
    by_name = {
        r["Properties"]["FunctionName"]: k
        for k, r in synth.resources(stage, "monitoring", "AWS::Lambda::Function").items()
    }
    return {key: by_name[function_name(config, key)] for key in ("drift_check", "retrain", "rollout")}


def _target_id(rule: dict[str, Any]) -> str:
    (target,) = rule["Properties"]["Targets"]
    return str(target["Arn"]["Fn::GetAtt"][0])


def test_schedules_are_the_configured_ones(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    ids = _function_ids(synth, stage, config)
    rules = {r["Properties"].get("Name"): r for r in synth.resources(stage, "monitoring", "AWS::Events::Rule").values()}
    expected = {
        "drift_check": config.drift.schedule,
        "retrain": config.retrain.schedule,
        "rollout": config.rollout.schedule,
    }
    for key, expression in expected.items():
        rule = rules[schedule_rule_name(config, key)]
        assert rule["Properties"]["ScheduleExpression"] == expression
        assert rule["Properties"]["State"] == "ENABLED"
        assert _target_id(rule) == ids[key]
        (target,) = rule["Properties"]["Targets"]
        assert "DeadLetterConfig" in target


def test_the_aggregation_schedule_sends_drift_check_the_aggregate_action(
    synth: Synthesized, stage: str, stage_settings
):
    config, _ = stage_settings[stage]
    ids = _function_ids(synth, stage, config)
    rules = {r["Properties"].get("Name"): r for r in synth.resources(stage, "monitoring", "AWS::Events::Rule").values()}
    rule = rules[aggregate_rule_name(config)]
    assert rule["Properties"]["ScheduleExpression"] == config.drift.aggregate_schedule
    assert _target_id(rule) == ids["drift_check"]
    (target,) = rule["Properties"]["Targets"]
    assert json.loads(target["Input"]) == AGGREGATE_EVENT
    assert parse_event(json.loads(target["Input"])).action == "aggregate"  # what the handler makes of it
    assert "DeadLetterConfig" in target


def test_drift_and_performance_events_start_retrain(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    ids = _function_ids(synth, stage, config)
    ((bus_id, bus),) = synth.resources(stage, "monitoring", "AWS::Events::EventBus").items()
    assert bus["Properties"]["Name"] == config.event_bus_name
    (rule,) = [
        r
        for r in synth.resources(stage, "monitoring", "AWS::Events::Rule").values()
        if "EventPattern" in r["Properties"]
    ]
    assert rule["Properties"]["EventBusName"] == {"Ref": bus_id}
    assert rule["Properties"]["EventPattern"] == {
        "source": [config.event_source],
        "detail-type": [MODEL_DRIFT_DETECTED, MODEL_PERFORMANCE_DEGRADED],
    }
    assert _target_id(rule) == ids["retrain"]


def test_scheduled_functions_are_not_retried_and_failures_are_kept(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    ids = _function_ids(synth, stage, config)
    ((queue_id, _),) = synth.resources(stage, "monitoring", "AWS::SQS::Queue").items()
    configs = {
        c["Properties"]["FunctionName"]["Ref"]: c["Properties"]
        for c in synth.resources(stage, "monitoring", "AWS::Lambda::EventInvokeConfig").values()
    }
    assert set(configs) == set(ids.values())
    for props in configs.values():
        assert props["MaximumRetryAttempts"] == 0
        assert props["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_every_alarm_notifies_the_encrypted_topic(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    ((topic_id, topic),) = synth.resources(stage, "monitoring", "AWS::SNS::Topic").items()
    assert "KmsMasterKeyId" in topic["Properties"]
    (policy,) = synth.resources(stage, "monitoring", "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Allow"
        and s["Action"] == "sns:Publish"
        and s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
        for s in statements
    )
    (key,) = synth.resources(stage, "monitoring", "AWS::KMS::Key").values()
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"} for s in key_statements)
    alarms = {
        **synth.resources(stage, "monitoring", "AWS::CloudWatch::Alarm"),
        **synth.resources(stage, "monitoring", "AWS::CloudWatch::CompositeAlarm"),
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}], alarm["Properties"].get("AlarmName")
    names = {a["Properties"].get("AlarmName") for a in alarms.values()}
    expected = {
        "api-5xx",
        "predict-errors",
        "predict-throttles",
        "predict-p99-latency",
        "capture-failures",
        "drift-detected",
        "drift-insufficient-data",
        "retrain-failures",
        "model-rollbacks",
        "failed-invocations",
    }
    assert {config.resource_name(name) for name in expected} <= names
    assert not any(str(name).startswith(config.canary_alarm_prefix) for name in names), (
        "the rollout controller may delete alarms under its canary prefix"
    )


def test_code_deploy_rollback_alarms_notify_through_a_composite(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    serving_alarms = {
        a["Properties"]["AlarmName"]: a for a in synth.resources(stage, "serving", "AWS::CloudWatch::Alarm").values()
    }
    assert set(serving_alarms) == set(code_deploy_alarm_names(config))
    (composite,) = synth.resources(stage, "monitoring", "AWS::CloudWatch::CompositeAlarm").values()
    rule = json.dumps(composite["Properties"]["AlarmRule"])
    for name in serving_alarms:
        assert f"alarm:{name}" in rule


def test_alarm_thresholds_follow_the_configuration(synth: Synthesized, stage: str, stage_settings):
    config, settings = stage_settings[stage]
    alarms = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources(stage, "monitoring", "AWS::CloudWatch::Alarm").values()
    }
    latency = alarms[config.resource_name("predict-p99-latency")]
    assert latency["Threshold"] == settings.p99_latency_ms(config) == config.rollout.max_p99_latency_ms
    assert latency["ExtendedStatistic"] == "p99"
    drift = alarms[config.resource_name("drift-detected")]
    (query,) = drift["Metrics"]
    assert "DriftVerdict" in query["Expression"] and f"model_name = '{config.model_name}'" in query["Expression"]
    capture = alarms[config.resource_name("capture-failures")]
    assert "SUM(CaptureFailures)" in capture["Metrics"][0]["Expression"]
    retrain = alarms[config.resource_name("retrain-failures")]
    assert (retrain["Namespace"], retrain["MetricName"]) == (config.metrics_namespace, "RetrainFailures")
    assert retrain["Dimensions"] == [{"Name": "model_name", "Value": config.model_name}]


def test_dashboard_shows_volume_latency_errors_drift_and_rollout(synth: Synthesized, stage: str):
    (dashboard,) = synth.resources(stage, "monitoring", "AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for metric in (
        "Predictions",
        "PredictLatency",
        "Errors",
        "ExecutedVersion",
        "DriftVerdict",
        "FeaturePSI",
        "RolloutWeight",
    ):
        assert metric in body, metric
