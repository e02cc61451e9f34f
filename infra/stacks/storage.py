"""Storage stack: what outlives every deployment of code (buckets and their key, all retained)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from functions.config import StageConfig
from infra.constructs.storage import StorageConstruct
from infra.settings import InfraSettings


class StorageStack(Stack):
    """Registry and data buckets, exported under readable names for the other stacks' IAM policies."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, settings: InfraSettings, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.storage = StorageConstruct(self, "Storage", config=config, settings=settings.storage)
        exports = {
            "registry-bucket-name": self.storage.registry.bucket_name,
            "registry-bucket-arn": self.storage.registry.bucket_arn,
            "data-bucket-name": self.storage.data.bucket_name,
            "data-bucket-arn": self.storage.data.bucket_arn,
            "data-key-arn": self.storage.key.key_arn,
        }
        for what, value in exports.items():
            CfnOutput(self, what.title().replace("-", ""), value=value, export_name=config.export_name(what))
