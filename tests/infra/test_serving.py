"""Serving stack: layer, predict and log-outcome, the live alias under CodeDeploy, the IAM-authenticated API."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from functions.routes import ROUTES
from infra.naming import api_name, code_deploy_names, function_name
from layers.build import FUNCTION_LAYERS

from .synthesis import Synthesized

CODEDEPLOY_CONFIGS = {
    "CANARY_10_PERCENT_5_MINUTES": "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    "CANARY_10_PERCENT_10_MINUTES": "CodeDeployDefault.LambdaCanary10Percent10Minutes",
    "LINEAR_10_PERCENT_EVERY_1_MINUTE": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
    "ALL_AT_ONCE": "CodeDeployDefault.LambdaAllAtOnce",
}


def test_layers_target_python312_x86_64(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    names = {}
    for role in ("serving", "monitoring"):
        for layer in synth.resources(stage, role, "AWS::Lambda::LayerVersion").values():
            props = layer["Properties"]
            assert (props["CompatibleRuntimes"], props["CompatibleArchitectures"]) == (["python3.12"], ["x86_64"])
            names[props["LayerName"]] = role
    assert names == {
        config.resource_name("serving-python"): "serving",
        config.resource_name("science-python"): "monitoring",
    }


def test_serving_functions_mount_the_serving_layer_alone_and_the_loop_both(synth: Synthesized, stage: str):
    layer_ids = {
        role: {
            r["Properties"]["LayerName"].rsplit("-", 2)[-2]: {"Ref": logical}
            for logical, r in synth.resources(stage, role, "AWS::Lambda::LayerVersion").items()
        }
        for role in ("serving", "monitoring")
    }
    for role in ("serving", "monitoring"):
        for fn in synth.resources(stage, role, "AWS::Lambda::Function").values():
            key = fn["Properties"]["Handler"].split(".")[2]
            layers = fn["Properties"]["Layers"]
            expected = FUNCTION_LAYERS[key]
            assert len(layers) == len(expected), key
            if role == "serving":
                assert layers == [layer_ids["serving"]["serving"]]
            else:  # this stack's science layer and the serving stack's serving layer (a cross-stack reference)
                assert layer_ids["monitoring"]["science"] in layers
                (imported,) = [layer for layer in layers if layer != layer_ids["monitoring"]["science"]]
                assert "ServingLayer" in json.dumps(imported) and "Ref" not in imported


def test_functions_run_python312_x86_64_traced_and_sized(synth: Synthesized, stage: str, stage_settings):
    config, settings = stage_settings[stage]
    functions = {
        r["Properties"]["FunctionName"]: r["Properties"]
        for role in ("serving", "monitoring")
        for r in synth.resources(stage, role, "AWS::Lambda::Function").values()
    }
    assert set(functions) == {function_name(config, key) for key in settings.functions}
    for key, sizing in settings.functions.items():
        props = functions[function_name(config, key)]
        assert props["Runtime"] == "python3.12"
        assert props["Architectures"] == ["x86_64"]
        assert props["Handler"] == f"functions.handlers.{key}.lambda_handler"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert (props["MemorySize"], props["Timeout"]) == (sizing.memory_mb, sizing.timeout_seconds)
        assert props["Environment"]["Variables"]["OMP_NUM_THREADS"] == "1"
        # Synthesized without a champion: the version CDK publishes serves none (503) until the first promotion.
        assert props["Environment"]["Variables"].get("MODEL_VERSION") == ("none" if key == "predict" else None)
        assert len(props["Layers"]) == len(FUNCTION_LAYERS[key])
    assert settings.functions["retrain"].timeout_seconds <= config.retrain.lock_ttl_seconds


def test_live_alias_is_shifted_by_a_codedeploy_canary_with_alarm_rollback(
    synth: Synthesized, stage: str, stage_settings
):
    config, settings = stage_settings[stage]
    template = synth.template(stage, "serving")
    ((_, alias),) = synth.resources(stage, "serving", "AWS::Lambda::Alias").items()
    ((version_id, _),) = synth.resources(stage, "serving", "AWS::Lambda::Version").items()
    assert alias["Properties"]["Name"] == config.rollout.alias_name
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    ((group_id, group),) = synth.resources(stage, "serving", "AWS::CodeDeploy::DeploymentGroup").items()
    assert update["DeploymentGroupName"] == {"Ref": group_id}
    application, group_name = code_deploy_names(config)
    props = group["Properties"]
    assert props["DeploymentGroupName"] == group_name
    assert props["DeploymentConfigName"] == CODEDEPLOY_CONFIGS[settings.code_deployment]
    assert props["AutoRollbackConfiguration"] == {
        "Enabled": True,
        "Events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_REQUEST", "DEPLOYMENT_STOP_ON_ALARM"],
    }
    assert props["AlarmConfiguration"]["Enabled"] is True
    assert len(props["AlarmConfiguration"]["Alarms"]) == 2
    template.has_resource_properties(
        "AWS::CodeDeploy::Application", {"ApplicationName": application, "ComputePlatform": "Lambda"}
    )
    # One rollback alarm watches exactly the version being deployed, through the alias.
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "Errors",
            "Namespace": "AWS/Lambda",
            "Dimensions": Match.array_with(
                [{"Name": "ExecutedVersion", "Value": {"Fn::GetAtt": [version_id, "Version"]}}]
            ),
        },
    )


def test_every_method_requires_iam_and_routes_to_the_right_function(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    methods = synth.resources(stage, "serving", "AWS::ApiGateway::Method")
    assert len(methods) == len(ROUTES) == 5
    for method in methods.values():
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert method["Properties"].get("ApiKeyRequired") in (None, False)
    alias_id = next(iter(synth.resources(stage, "serving", "AWS::Lambda::Alias")))
    outcome_fn = next(
        k
        for k, v in synth.resources(stage, "serving", "AWS::Lambda::Function").items()
        if v["Properties"]["FunctionName"] == function_name(config, "log_outcome")
    )
    paths = {
        k: v["Properties"]["PathPart"]
        for k, v in synth.resources(stage, "serving", "AWS::ApiGateway::Resource").items()
    }
    routes = {}
    for method in methods.values():
        props = method["Properties"]
        uri = str(props["Integration"]["Uri"])
        target = "alias" if alias_id in uri else "log_outcome" if outcome_fn in uri else "?"
        routes[(props["HttpMethod"], paths[props["ResourceId"]["Ref"]])] = target
    assert routes == {
        ("POST", "predict"): "alias",
        ("GET", "model"): "alias",
        ("GET", "health"): "alias",
        ("GET", "openapi.json"): "alias",
        ("POST", "outcomes"): "log_outcome",
    }
    expected = {(r.method, r.path[1:]): "alias" if r.function == "predict" else r.function for r in ROUTES}
    assert routes == expected, "the API is functions/routes.py's table"


def test_every_method_has_its_own_invoke_permission(synth: Synthesized, stage: str):
    permissions = synth.resources(stage, "serving", "AWS::Lambda::Permission").values()
    source_arns = [json.dumps(p["Properties"].get("SourceArn")) for p in permissions]
    for route in ROUTES:
        suffix = f"/{route.method}{route.path}"
        granted = [arn for arn in source_arns if suffix + '"' in arn]
        assert granted, f"no Lambda permission lets API Gateway invoke {route.method} {route.path}"


def test_post_bodies_are_validated_and_errors_keep_the_functions_shape(synth: Synthesized, stage: str):
    methods = synth.resources(stage, "serving", "AWS::ApiGateway::Method")
    ((validator_id, validator),) = synth.resources(stage, "serving", "AWS::ApiGateway::RequestValidator").items()
    assert validator["Properties"]["ValidateRequestBody"] is True
    for method in methods.values():
        props = method["Properties"]
        if props["HttpMethod"] == "POST":
            assert props["RequestValidatorId"] == {"Ref": validator_id}
            assert "application/json" in props["RequestModels"]
    responses = {
        r["Properties"]["ResponseType"]: r
        for r in synth.resources(stage, "serving", "AWS::ApiGateway::GatewayResponse").values()
    }
    assert set(responses) == {"BAD_REQUEST_BODY", "DEFAULT_4XX", "DEFAULT_5XX"}
    for response in responses.values():
        template = response["Properties"]["ResponseTemplates"]["application/json"]
        assert '"code"' in template and '"message"' in template and '"request_id"' in template


def test_stage_throttles_logs_access_as_json_and_traces(synth: Synthesized, stage: str, stage_settings):
    config, settings = stage_settings[stage]
    (stage_res,) = synth.resources(stage, "serving", "AWS::ApiGateway::Stage").values()
    props = stage_res["Properties"]
    assert props["StageName"] == settings.api.stage_name
    assert props["TracingEnabled"] is True
    assert props["AccessLogSetting"]["DestinationArn"]
    assert props["AccessLogSetting"]["Format"].startswith("{")
    settings_by_path = {(m["ResourcePath"], m["HttpMethod"]): m for m in props["MethodSettings"]}
    everything = settings_by_path[("/*", "*")]
    assert (everything["ThrottlingRateLimit"], everything["ThrottlingBurstLimit"]) == (
        settings.api.rate_limit,
        settings.api.burst_limit,
    )
    assert everything["DataTraceEnabled"] is False
    outcomes = settings_by_path[("/~1outcomes", "POST")]
    assert outcomes["ThrottlingRateLimit"] == settings.api.outcomes_rate_limit
    synth.template(stage, "serving").has_resource_properties("AWS::ApiGateway::RestApi", {"Name": api_name(config)})


def _method_and_path(arn: dict[str, Any]) -> str:
    """``POST /predict`` from an execute-api ARN ``Fn::Join`` ending in ``/<stage>/POST/predict``."""
    _, _stage, method, path = arn["Fn::Join"][1][-1].split("/", 3)
    return f"{method} /{path}"


def test_invoke_policies_name_exact_methods(synth: Synthesized, stage: str):
    policies = synth.resources(stage, "serving", "AWS::IAM::ManagedPolicy")
    assert len(policies) == 3
    granted: dict[str, set[str]] = {}
    for policy in policies.values():
        (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
        assert statement["Action"] == "execute-api:Invoke"
        assert "Roles" not in policy["Properties"], "attached by operators to their callers' roles"
        name = policy["Properties"]["ManagedPolicyName"].rsplit("-api-", 1)[1]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        granted[name] = {_method_and_path(arn) for arn in resources}
    assert granted == {
        "predict-invoke": {"POST /predict", "GET /model", "GET /health", "GET /openapi.json"},
        "outcomes-invoke": {"POST /outcomes"},
        "contract-read": {"GET /openapi.json"},
    }
