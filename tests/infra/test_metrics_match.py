"""Every dashboard widget and alarm on our namespace queries a metric the handlers really emit.

The handlers run against moto: the whole local lifecycle (predict, log-outcome, drift-check,
retrain, the rollout controller's canary, promotion and rollback), plus the failure paths it
never takes (a predict version that cannot load its model, a capture write that fails, a retrain
that fails or is skipped). Every EMF document they print is collected as (metric name, dimension
names). The synthesized templates are read for what they query: dashboard metrics and ``SEARCH``
expressions, alarm metrics, Metrics Insights ``SELECT ... FROM SCHEMA(...)`` queries; and the
canary alarms the controller creates are taken from its own code. AWS's namespaces are left out.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from functions.config import METRICS_NAMESPACE, stage_config
from functions.local.lifecycle import demo_config, run_lifecycle
from functions.local.observability import LocalMetrics, MetricPoint

from .synthesis import STAGES, Synthesized

Query = tuple[str, frozenset[str]]  # metric name, dimension names (exactly)
SEARCH = re.compile(r"SEARCH\('\{(?P<schema>[^}]*)\}(?P<terms>[^']*)'")
METRIC_NAME = re.compile(r'MetricName="(?P<name>[^"]+)"')
SELECT = re.compile(r'SELECT \w+\((?P<name>\w+)\) FROM SCHEMA\("(?P<ns>[^"]+)"(?P<dims>(?:, *\w+)*)\)')


def _flatten(value: Any) -> str:
    """A template string, with ``Fn::Join`` parts joined and other tokens as placeholders."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_flatten(part) for part in parts)
    return "TOKEN"


def _expression_queries(expression: str) -> Iterator[tuple[str, Query]]:
    for match in SEARCH.finditer(expression):
        namespace, *dims = [part.strip() for part in match["schema"].split(",")]
        for name in METRIC_NAME.finditer(match["terms"]):
            yield namespace, (name["name"], frozenset(dims))
    for match in SELECT.finditer(expression):
        dims = [d.strip() for d in match["dims"].split(",") if d.strip()]
        yield match["ns"], (match["name"], frozenset(dims))


def dashboard_queries(body: dict[str, Any]) -> Iterator[tuple[str, str, Query]]:
    """(widget title, namespace, query) of every metric and expression on the dashboard."""
    for widget in body["widgets"]:
        properties = widget.get("properties", {})
        title = properties.get("title", widget.get("type", "?"))
        for metric in properties.get("metrics", []):
            if isinstance(metric[0], dict) and "expression" in metric[0]:
                for namespace, query in _expression_queries(metric[0]["expression"]):
                    yield title, namespace, query
                continue
            fields = [m for m in metric if not isinstance(m, dict)]
            namespace, name, pairs = fields[0], fields[1], fields[2:]
            yield title, namespace, (name, frozenset(pairs[0::2]))


def alarm_queries(props: dict[str, Any]) -> Iterator[tuple[str, Query]]:
    """(namespace, query) of one AWS::CloudWatch::Alarm."""
    if "MetricName" in props:
        dims = frozenset(d["Name"] for d in props.get("Dimensions", []))
        yield props["Namespace"], (props["MetricName"], dims)
    for metric in props.get("Metrics", []):
        if "Expression" in metric:
            yield from _expression_queries(_flatten(metric["Expression"]))
        if "MetricStat" in metric:
            m = metric["MetricStat"]["Metric"]
            yield m["Namespace"], (m["MetricName"], frozenset(d["Name"] for d in m.get("Dimensions", [])))


def _emf_points(text: str) -> list[MetricPoint]:
    sink = LocalMetrics()
    for line in text.splitlines():
        if line.startswith('{"_aws"'):
            sink.record(json.loads(line))
    return sink.points


def _failure_paths() -> tuple[list[MetricPoint], list[dict[str, Any]]]:
    """The EMF of what the lifecycle does not do: a retrain that fails, is skipped or is rejected, a
    predict version that cannot load its model (a 5xx), and a capture write that fails; and the
    canary alarms the rollout controller creates (as CloudWatch describes them)."""
    from moto import mock_aws

    from functions.bootstrap import AwsClients, PredictEnvironment, capture_failure_reporter
    from functions.handlers import predict, retrain
    from functions.handlers import rollout as rollout_handler
    from functions.local.host import settings_values
    from functions.local.runtime import bootstrap_model, ensure_resources
    from functions.services import rollout
    from functions.settings import PredictSettings, RetrainSettings, RolloutSettings
    from tests.conftest import FakeLambdaContext
    from tests.events import load_event

    config = stage_config("local")
    out = io.StringIO()
    with mock_aws(), contextlib.redirect_stdout(out):
        clients = AwsClients()
        ensure_resources(clients, config)

        def run_retrain(event: dict[str, Any], **overrides: str) -> str:
            settings = RetrainSettings.model_validate(settings_values(config, "retrain", **overrides))
            function = retrain.RetrainFunction(retrain.RetrainEnvironment(settings, clients))
            return str(retrain.instrument(function)(event, FakeLambdaContext())["status"])

        assert run_retrain({"trigger": "operator", "force": True}) == "failed"  # no champion to retrain
        assert run_retrain({"neither": "an event nor a request"}) == "skipped"
        bootstrap_model(clients.s3, config, lambda _: None)
        assert run_retrain({"trigger": "operator", "force": True}, LATENCY_BUDGET_MS="0.000001") == "rejected"
        pinned_to_nothing = PredictSettings.model_validate(settings_values(config, "predict", MODEL_VERSION="7"))
        handler = predict.instrument(predict.PredictFunction(PredictEnvironment(pinned_to_nothing, s3=clients.s3)))
        assert handler(load_event("predict_single"), FakeLambdaContext())["statusCode"] == 503
        capture_failure_reporter(config.model_name, 1)("capture write failed", 3)
        controller = rollout_handler.RolloutFunction(
            RolloutSettings.model_validate(settings_values(config, "rollout")), clients, config.metrics_namespace
        )
        rollout._create_alarms(controller.ports, config.model_name, 2)
        canary_alarms = clients.cloudwatch.describe_alarms()["MetricAlarms"]
    assert len(canary_alarms) == 2, canary_alarms
    return _emf_points(out.getvalue()), canary_alarms


@pytest.fixture(scope="module")
def observed(tmp_path_factory: pytest.TempPathFactory) -> tuple[set[Query], list[dict[str, Any]]]:
    """What the handlers emitted on our namespace, and the canary alarms the controller creates."""
    saved_env, saved_stdout = dict(os.environ), sys.stdout  # the runtime points boto3 at its moto via the env
    saved_cwd = os.getcwd()
    points: list[MetricPoint] = []
    try:
        os.chdir(tmp_path_factory.mktemp("lifecycle"))  # the demo writes its logs and report under .mlops/
        for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(var, None)
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"})
        os.environ["AWS_DEFAULT_REGION"] = stage_config("local").region
        # Lambda's environment names the service (functions/config.py: function_environment); Powertools
        # reads it from the process environment, which the in-process host does not set by itself.
        os.environ["POWERTOOLS_SERVICE_NAME"] = "mlops-local"
        failures, canary_alarms = _failure_paths()
        points += failures
        checks = run_lifecycle(demo_config(stage_config("local")), seed=7, emitted=points)
        assert all(checks.values()), checks
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdout = saved_stdout
    return {(p.name, frozenset(p.dimensions)) for p in points if p.namespace == METRICS_NAMESPACE}, canary_alarms


@pytest.fixture(scope="module")
def emitted(observed: tuple[set[Query], list[dict[str, Any]]]) -> set[Query]:
    return observed[0]


def test_the_canary_alarms_the_controller_creates_query_emitted_metrics(
    observed: tuple[set[Query], list[dict[str, Any]]],
) -> None:
    emitted, alarms = observed
    queried = [(a["AlarmName"], q) for a in alarms for ns, q in alarm_queries(a) if ns == METRICS_NAMESPACE]
    assert {name for _, (name, _) in queried} == {"Errors", "PredictLatency"}

    assert [(where, q) for where, q in queried if q not in emitted] == []


def test_drift_metrics_carry_exactly_the_documented_dimensions(emitted: set[Query]) -> None:
    # The "Feature PSI" widget searches {ns,feature,model_name,model_version}; an extra "service"
    # dimension (Powertools' single_metric) made it empty.
    assert ("FeaturePSI", frozenset({"feature", "model_name", "model_version"})) in emitted
    assert not any("service" in dims for _, dims in emitted)


@pytest.mark.parametrize("stage", STAGES)
def test_every_dashboard_widget_and_alarm_on_our_namespace_queries_an_emitted_metric(
    synth: Synthesized, stage: str, emitted: set[Query]
) -> None:
    queried: list[tuple[str, Query]] = []
    for resource in synth.resources(stage, "monitoring", "AWS::CloudWatch::Dashboard").values():
        body = json.loads(_flatten(resource["Properties"]["DashboardBody"]))
        queried += [(f"dashboard {title!r}", q) for title, ns, q in dashboard_queries(body) if ns == METRICS_NAMESPACE]
    for role in ("serving", "monitoring"):
        for logical_id, resource in synth.resources(stage, role, "AWS::CloudWatch::Alarm").items():
            queried += [
                (f"alarm {logical_id}", q) for ns, q in alarm_queries(resource["Properties"]) if ns == METRICS_NAMESPACE
            ]
    assert len(queried) >= 15, queried  # the parser found the widgets and alarms

    missing = [(where, name, sorted(dims)) for where, (name, dims) in queried if (name, dims) not in emitted]

    assert missing == [], "\n".join(map(str, missing))
