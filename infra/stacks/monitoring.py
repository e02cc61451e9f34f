"""Monitoring stack: drift-check, retrain and rollout on their schedules and events; alarms, topic, dashboard."""

from __future__ import annotations

from typing import Any

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.config import StageConfig
from infra.access import StorageRefs, grant_key, grant_objects
from infra.assets import AssetDirs
from infra.constructs.alarms import AlarmsConstruct
from infra.constructs.alerts import AlertsConstruct
from infra.constructs.dashboard import DashboardConstruct
from infra.constructs.events import EventsConstruct
from infra.constructs.failures import FailedInvocationsConstruct
from infra.constructs.function import FunctionConstruct
from infra.constructs.layer import LayerConstruct
from infra.nag import acknowledge_wildcards
from infra.naming import code_deploy_names
from infra.settings import InfraSettings
from layers.build import SCIENCE, SERVING

MODELS, ROLLOUTS, LOCKS = "models/", "rollouts/", "locks/"
ROLLOUT_LAMBDA_ACTIONS = (
    "lambda:GetAlias",
    "lambda:UpdateAlias",
    "lambda:GetFunction",
    "lambda:GetFunctionConfiguration",
    "lambda:UpdateFunctionConfiguration",
    "lambda:PublishVersion",
    "lambda:ListVersionsByFunction",
)


class MonitoringStack(Stack):
    """The closed loop. Only retrain registers models; only rollout moves the predict alias.

    The serving stack's resources are addressed by their configured names (functions/config.py),
    so IAM policies here name them literally. The functions mount the serving stack's serving layer and
    this stack's science layer.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        assets: AssetDirs,
        storage: StorageRefs,
        serving_layer: lambda_.ILayerVersion,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        self.alerts = AlertsConstruct(self, "Alerts", config=config)
        failures = FailedInvocationsConstruct(self, "FailedInvocations", config=config).queue
        self.events = EventsConstruct(self, "Events", config=config, failures=failures)
        bus = self.events.bus
        code = lambda_.Code.from_asset(str(assets.function))
        science = LayerConstruct(self, "ScienceLayer", config=config, name=SCIENCE, path=assets.layers[SCIENCE])
        layers = {SERVING: serving_layer, SCIENCE: science.layer}
        common = {
            "REGISTRY_BUCKET": storage.registry.name,
            "DATA_BUCKET": storage.data.name,
            "EVENT_BUS_NAME": bus.event_bus_name,
        }
        application, group = code_deploy_names(config)

        def function(construct_id: str, key: Any, description: str, **extra: Any) -> FunctionConstruct:
            return FunctionConstruct(
                self,
                construct_id,
                config=config,
                settings=settings,
                function=key,
                code=code,
                layers=layers,
                failures=failures,
                description=description,
                **extra,
            )

        self.drift_check = function(
            "DriftCheck", "drift_check", "Checks the serving model's recent traffic for drift", environment=common
        )
        self.retrain = function(
            "Retrain", "retrain", "Trains, gates and registers a candidate model", environment=common
        )
        self.rollout = function(
            "Rollout",
            "rollout",
            "Canary controller: moves the predict alias between model versions",
            environment={
                **common,
                "ALARM_TOPIC_ARN": self.alerts.topic.topic_arn,
                "CODEDEPLOY_APPLICATION": application,
                "CODEDEPLOY_DEPLOYMENT_GROUP": group,
            },
            unscoped_actions={"cloudwatch:GetMetricStatistics": "CloudWatch metric reads accept no resource ARN"},
        )
        self._grant_storage(storage)
        for fn in (self.drift_check, self.retrain, self.rollout):
            bus.grant_put_events_to(fn.role)
        self._grant_rollout_controls()

        self.events.schedule("drift_check", config.drift.schedule, self.drift_check.function)
        self.events.aggregation(config.drift.aggregate_schedule, self.drift_check.function)
        self.events.schedule("retrain", config.retrain.schedule, self.retrain.function)
        self.events.schedule("rollout", config.rollout.schedule, self.rollout.function)
        self.events.on_model_events(self.retrain.function)

        self.alarms = AlarmsConstruct(
            self, "Alarms", config=config, settings=settings, topic=self.alerts.topic, failures=failures
        )
        self.dashboard = DashboardConstruct(
            self, "Dashboard", config=config, settings=settings, alarms=list(self.alarms.alarms.values())
        )

    def _grant_storage(self, storage: StorageRefs) -> None:
        c = self.config
        capture, outcomes = f"{c.capture_prefix}/", f"{c.outcomes_prefix}/"
        aggregates = f"{c.drift.aggregates_prefix}/"
        drift, retrain, rollout = self.drift_check, self.retrain, self.rollout
        grant_objects(drift, drift.role, storage.registry, read=[MODELS], purpose="the serving model's card")
        grant_objects(
            drift,
            drift.role,
            storage.data,
            read=[capture, outcomes, aggregates],
            write=[f"{c.drift.reports_prefix}/", aggregates],
            delete=[aggregates],
            purpose="read captured traffic and outcomes, write drift reports, keep hourly drift aggregates",
        )
        grant_objects(
            retrain,
            retrain.role,
            storage.registry,
            read=[MODELS, LOCKS, ROLLOUTS],
            write=[MODELS, LOCKS, ROLLOUTS],
            delete=[LOCKS],
            purpose="register versions, take and release the retrain lock, request a rollout",
        )
        grant_objects(
            retrain,
            retrain.role,
            storage.data,
            read=[f"{c.datasets_prefix}/", capture, outcomes],
            purpose="training data and labelled traffic",
        )
        grant_objects(
            rollout,
            rollout.role,
            storage.registry,
            read=[MODELS, ROLLOUTS],
            write=[ROLLOUTS, "models/*/aliases.json", "models/*/versions/*/status.json"],
            purpose="controller state, alias moves and version status; never a model or card",
        )
        grant_objects(
            rollout,
            rollout.role,
            storage.data,
            read=[capture, outcomes],
            purpose="the canary's captured outputs and outcomes",
        )
        for fn in (drift, retrain, rollout):
            grant_key(fn.role, storage.key_arn, encrypt=True)

    def _grant_rollout_controls(self) -> None:
        """The predict function's versions and alias, the canary alarms, and CodeDeploy's deployment list."""
        c, stack = self.config, Stack.of(self)
        function_arn = stack.format_arn(
            service="lambda",
            resource="function",
            resource_name=c.predict_function_name,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        application, group = code_deploy_names(c)
        statements = [
            iam.PolicyStatement(actions=list(ROLLOUT_LAMBDA_ACTIONS), resources=[function_arn, f"{function_arn}:*"]),
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms", "cloudwatch:DescribeAlarms"],
                resources=[
                    stack.format_arn(
                        service="cloudwatch",
                        resource="alarm",
                        resource_name=f"{c.canary_alarm_prefix}-*",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
            iam.PolicyStatement(
                actions=["codedeploy:ListDeployments", "codedeploy:GetDeployment"],
                resources=[
                    stack.format_arn(
                        service="codedeploy",
                        resource="deploymentgroup",
                        resource_name=f"{application}/{group}",
                        arn_format=ArnFormat.COLON_RESOURCE_NAME,
                    )
                ],
            ),
        ]
        for statement in statements:
            self.rollout.role.add_to_principal_policy(statement)
        acknowledge_wildcards(
            self.rollout.role,
            statements,
            "The predict function's numbered versions (published by this controller at run time, so not known"
            " here) and the canary alarms it creates, all named under the function's own prefix.",
        )
