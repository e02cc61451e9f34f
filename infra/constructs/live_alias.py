"""The predict alias ``live``: code deployments shift it through CodeDeploy, rolled back by alarms."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.config import StageConfig
from infra.nag import acknowledge
from infra.naming import api_name, code_deploy_alarm_names, code_deploy_names
from infra.settings import InfraSettings

ONE_MINUTE = Duration.minutes(1)


class LiveAliasConstruct(Construct):
    """``live`` -> the version CDK publishes, moved by a CodeDeploy canary when the code or its settings change.

    The rollback alarms watch what a code deployment can break: invocation errors of the new
    Lambda version (``ExecutedVersion`` of the alias) and 5xx answers of the API. Model canaries
    are the rollout controller's business: it moves the same alias between versions it publishes,
    so the two must not run at once (see infra/README.md).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        function: lambda_.Function,
    ) -> None:
        super().__init__(scope, construct_id)
        self.version = function.current_version
        provisioned = settings.predict_provisioned_concurrency
        self.alias = lambda_.Alias(
            self,
            "Alias",
            alias_name=config.rollout.alias_name,
            version=self.version,
            description="What API Gateway calls; weights move during code and model canaries",
            provisioned_concurrent_executions=provisioned or None,
        )
        name = config.predict_function_name
        errors_alarm, api_alarm = code_deploy_alarm_names(config)
        self.new_version_errors = cloudwatch.Alarm(
            self,
            "NewVersionErrors",
            alarm_name=errors_alarm,
            alarm_description="Invocation errors of the Lambda version a code deployment is shifting to",
            metric=cloudwatch.Metric(
                namespace="AWS/Lambda",
                metric_name="Errors",
                dimensions_map={
                    "FunctionName": name,
                    "Resource": f"{name}:{config.rollout.alias_name}",
                    "ExecutedVersion": self.version.version,
                },
                statistic="Sum",
                period=ONE_MINUTE,
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.api_5xx = cloudwatch.Alarm(
            self,
            "Api5xx",
            alarm_name=api_alarm,
            alarm_description="5xx answers of the API while a code deployment runs",
            metric=cloudwatch.Metric(
                namespace="AWS/ApiGateway",
                metric_name="5XXError",
                dimensions_map={"ApiName": api_name(config), "Stage": settings.api.stage_name},
                statistic="Sum",
                period=ONE_MINUTE,
            ),
            threshold=settings.alarms.api_5xx_threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        application_name, group_name = code_deploy_names(config)
        self.application = codedeploy.LambdaApplication(self, "Application", application_name=application_name)
        self.group = codedeploy.LambdaDeploymentGroup(
            self,
            "DeploymentGroup",
            application=self.application,
            deployment_group_name=group_name,
            alias=self.alias,
            deployment_config=getattr(codedeploy.LambdaDeploymentConfig, settings.code_deployment),
            alarms=[self.new_version_errors, self.api_5xx],
            auto_rollback=codedeploy.AutoRollbackConfig(
                failed_deployment=True, stopped_deployment=True, deployment_in_alarm=True
            ),
        )
        acknowledge(
            self.group,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSCodeDeployRoleForLambdaLimited]",
            "CDK's LambdaDeploymentGroup always attaches this AWS-maintained policy to CodeDeploy's service role; its"
            " Limited variant is what CodeDeploy needs to shift a Lambda alias (alias update, alarm reads).",
        )

    @property
    def alarms(self) -> list[cloudwatch.Alarm]:
        """The rollback alarms (their notification is the monitoring stack's composite alarm)."""
        return [self.new_version_errors, self.api_5xx]
