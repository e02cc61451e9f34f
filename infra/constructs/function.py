"""One Lambda function of the project: its own role, log group, code, layer, environment and tracing."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.config import StageConfig, function_environment
from infra.constructs.layer import ARCHITECTURE, RUNTIME
from infra.nag import acknowledge
from infra.naming import function_name, handler
from infra.settings import LOG_RETENTION, FunctionKey, InfraSettings
from layers.build import FUNCTION_LAYERS

XRAY_ACTIONS = ("xray:PutTraceSegments", "xray:PutTelemetryRecords")


class FunctionConstruct(Construct):
    """A function of ``functions/`` deployed with the shared code asset and the layers it imports.

    ``layers`` maps layer names to layer versions; the function mounts the ones ``FUNCTION_LAYERS``
    (layers/build.py, where the budgets are checked) gives it, in that order.

    Its environment is ``function_environment(config, function)`` (what the local runtime sets too)
    with ``environment`` laid over it for the names only a deployment knows (bucket names). The
    role starts with nothing but its own log group and X-Ray; the stack grants the rest.
    Asynchronously invoked functions (``failures`` given) are not retried by Lambda: a failed
    event goes to the failures queue, and the next schedule or event runs them again.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        function: FunctionKey,
        code: lambda_.Code,
        layers: Mapping[str, lambda_.ILayerVersion],
        environment: Mapping[str, str],
        description: str,
        failures: sqs.IQueue | None = None,
        unscoped_actions: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key = function
        self.name = function_name(config, function)
        sizing = settings.sizing(function)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"{self.name}: only what this function uses",
        )
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=logs.RetentionDays[LOG_RETENTION[settings.log_retention_days]],
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.log_group.grant_write(self.role)
        self.environment = {**function_environment(config, function), **environment}
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=self.name,
            description=description,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            handler=handler(function),
            code=code,
            layers=[layers[name] for name in FUNCTION_LAYERS[function]],
            memory_size=sizing.memory_mb,
            timeout=Duration.seconds(sizing.timeout_seconds),
            environment=self.environment,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            retry_attempts=0 if failures else None,
            max_event_age=Duration.seconds(settings.async_event_max_age_seconds) if failures else None,
            on_failure=destinations.SqsDestination(failures) if failures else None,
        )
        unscoped = dict.fromkeys(XRAY_ACTIONS, "X-Ray accepts no resource-level permissions")
        if unscoped_actions:
            self.role.add_to_principal_policy(iam.PolicyStatement(actions=list(unscoped_actions), resources=["*"]))
            unscoped.update(unscoped_actions)
        acknowledge(
            self.role,
            "AwsSolutions-IAM5[Resource::*]",
            "Actions without resource-level permissions, nothing else: "
            + "; ".join(f"{action} ({why})" for action, why in unscoped.items()),
        )
        runtime_reason = (
            "python3.12 on purpose: the layers' numpy/onnxruntime/scikit-learn wheels and bytecode are built for"
            " cp312 (make layer) and pipelines are loaded by the scikit-learn they were saved with; moving runtimes"
            " is a rebuild of the layers, not a setting."
        )
        acknowledge(self.function, "AwsSolutions-L1", runtime_reason)
        acknowledge(self.function, "Serverless-LambdaLatestVersion", runtime_reason)
        if failures:
            acknowledge(
                self.function,
                "Serverless-LambdaDLQ",
                "Failed asynchronous invocations go to the on-failure destination (the failed-invocations queue),"
                " whose record also carries the error; a dead-letter queue as well would deliver each failure twice.",
            )
        else:
            acknowledge(
                self.function,
                "Serverless-LambdaDLQ",
                "Invoked synchronously by API Gateway only: a failure is answered to the client, no event is queued.",
            )
