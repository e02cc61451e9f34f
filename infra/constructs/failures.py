"""Where failed asynchronous work lands: Lambda on-failure records and undeliverable EventBridge events."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from functions.config import StageConfig
from infra.nag import acknowledge


class FailedInvocationsConstruct(Construct):
    """One encrypted, TLS-only queue, kept 14 days; an alarm watches its depth (see AlarmsConstruct)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=config.resource_name("failed-invocations"),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        reason = (
            "This queue is itself the dead-letter destination (Lambda on-failure records of drift-check, retrain"
            " and rollout; events EventBridge could not deliver). Nothing consumes it, so nothing can fail"
            " downstream of it; an alarm on its depth notifies operators."
        )
        acknowledge(self.queue, "AwsSolutions-SQS3", reason)
        acknowledge(self.queue, "Serverless-SQSRedrivePolicy", reason)
