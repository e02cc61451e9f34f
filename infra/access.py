"""Least-privilege S3 and KMS statements by key prefix, for one function's role.

Each statement names exact actions (no ``s3:*``, no ``s3:Get*``) on the objects under a prefix; a
prefix wildcard is acknowledged to cdk-nag where it is granted. A reader also gets ``s3:ListBucket``
on the bucket: without it S3 answers a missing key with 403 instead of 404, and the adapters rely
on "not found" (an unset alias, no lock, no rollout yet). Listing shows key names, never content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Fn, Stack
from aws_cdk import aws_iam as iam
from constructs import IConstruct

from functions.config import StageConfig
from infra.nag import acknowledge_wildcards


@dataclass(frozen=True)
class BucketRef:
    """A bucket of the storage stack as another stack sees it: name and ARN (tokens), and what it is."""

    label: str
    name: str
    arn: str

    def objects(self, pattern: str) -> str:
        """ARN of the objects matching ``pattern`` (``models/`` means every key under ``models/``)."""
        return f"{self.arn}/{pattern}*" if pattern.endswith("/") else f"{self.arn}/{pattern}"


@dataclass(frozen=True)
class StorageRefs:
    """The registry and data buckets and their KMS key, read from the storage stack's named exports."""

    registry: BucketRef
    data: BucketRef
    key_arn: str

    @classmethod
    def imported(cls, config: StageConfig) -> StorageRefs:
        def value(what: str) -> str:
            return Fn.import_value(config.export_name(what))

        return cls(
            registry=BucketRef("registry", value("registry-bucket-name"), value("registry-bucket-arn")),
            data=BucketRef("data", value("data-bucket-name"), value("data-bucket-arn")),
            key_arn=value("data-key-arn"),
        )


def grant_objects(
    scope: IConstruct,
    role: iam.IRole,
    bucket: BucketRef,
    *,
    read: Sequence[str] = (),
    write: Sequence[str] = (),
    delete: Sequence[str] = (),
    purpose: str,
) -> list[iam.PolicyStatement]:
    """Add to ``role`` what it needs on ``bucket``'s objects under the given prefixes (and nothing else).

    Args:
        scope: where the wildcard acknowledgments are recorded (the function's construct).
        role: the function's role.
        bucket: the bucket.
        read: prefixes (or key patterns) read with GetObject; the bucket is then listable too.
        write: prefixes (or key patterns) written with PutObject (conditional writes included).
        delete: prefixes (or key patterns) deleted with DeleteObject.
        purpose: what the function does with them, recorded as the reason of each acknowledgment.

    Returns:
        The statements added.
    """
    statements = []
    for action, patterns in (("s3:GetObject", read), ("s3:PutObject", write), ("s3:DeleteObject", delete)):
        if patterns:
            statements.append(iam.PolicyStatement(actions=[action], resources=[bucket.objects(p) for p in patterns]))
    if read:
        statements.append(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.arn]))
    for statement in statements:
        role.add_to_principal_policy(statement)
    acknowledge_wildcards(
        scope,
        statements,
        f"Only keys under the named prefixes of the {bucket.label} bucket ({purpose}); the code addresses"
        " prefixes whose keys carry model names, versions and timestamps known only at run time.",
    )
    return statements


def grant_key(role: iam.IRole, key_arn: str, *, encrypt: bool) -> iam.PolicyStatement:
    """Use of the buckets' KMS key, only through S3: decrypt to read, and data keys to write."""
    actions = ["kms:Decrypt", "kms:GenerateDataKey"] if encrypt else ["kms:Decrypt"]
    via_s3 = f"s3.{Stack.of(role).region}.amazonaws.com"
    statement = iam.PolicyStatement(
        actions=actions, resources=[key_arn], conditions={"StringEquals": {"kms:ViaService": via_s3}}
    )
    role.add_to_principal_policy(statement)
    return statement
