"""The SNS topic every alarm notifies, encrypted with a key CloudWatch may use."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from functions.config import StageConfig


class AlertsConstruct(Construct):
    """Topic ``<app>-<stage>-alarms``: TLS-only publishing, KMS-encrypted; subscribe operators to it.

    Subscriptions are left to operators (``aws sns subscribe``): made outside the stack, they
    survive redeployments and need no confirmation again.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "TopicKey",
            alias=f"alias/{config.resource_name('alarms')}",
            description=f"{config.resource_name('alarms')}: alarm notifications",
            enable_key_rotation=True,
        )
        # CloudWatch alarms (static ones and the canary alarms the rollout controller creates) publish here.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
            )
        )
        self.topic = sns.Topic(
            self,
            "Topic",
            topic_name=config.resource_name("alarms"),
            display_name=f"{config.app_name} {config.stage} alarms",
            master_key=self.key,
            enforce_ssl=True,
        )
        # The stack's topic policy replaces SNS's default one: let this account's alarms publish explicitly.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                actions=["sns:Publish"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=[self.topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": Stack.of(self).account},
                    "ArnLike": {
                        "aws:SourceArn": Stack.of(self).format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    },
                },
            )
        )
