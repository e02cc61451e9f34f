"""The model registry and data buckets, their KMS key, and the bucket their access logs go to."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from functions.adapters.locks import LOCK_PREFIX
from functions.config import StageConfig
from functions.domain.card import ARTIFACT_FILES
from infra.settings import StorageSettings

ABORT_UPLOADS_AFTER = Duration.days(7)
VERSION_OBJECTS = "models/*/versions/*/"  # a registered version's folder in the registry bucket


class StorageConstruct(Construct):
    """Versioned, KMS-encrypted, TLS-only, private buckets that a ``cdk destroy`` leaves in place.

    Registry: ``models/`` (versions, cards, aliases), ``rollouts/`` (controller state), ``locks/``
    (retrain lock and cooldown). Data: ``capture/``, ``outcomes/``, ``datasets/``, ``reports/drift/``.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, settings: StorageSettings) -> None:
        super().__init__(scope, construct_id)
        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{config.resource_name('data')}",
            description=f"{config.resource_name('data')}: model registry and captured data",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.access_logs = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,  # the only encryption S3 log delivery writes to
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(settings.access_log_expiration_days),
                    abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER,
                )
            ],
        )
        self.registry = self._bucket(
            "RegistryBucket",
            "registry/",
            [
                s3.LifecycleRule(
                    id="expire-old-lock-versions",
                    prefix=f"{LOCK_PREFIX.split('/')[0]}/",
                    noncurrent_version_expiration=Duration.days(settings.lock_noncurrent_days),
                    expired_object_delete_marker=True,
                ),
                s3.LifecycleRule(id="abort-uploads", abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER),
            ],
        )
        self._protect_versions()
        self.data = self._bucket(
            "DataBucket",
            "data/",
            [
                s3.LifecycleRule(
                    id="capture",
                    prefix=f"{config.capture_prefix}/",
                    transitions=[
                        s3.Transition(
                            storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                            transition_after=Duration.days(settings.capture_transition_days),
                        )
                    ],
                    expiration=Duration.days(settings.capture_expiration_days),
                ),
                s3.LifecycleRule(
                    id="drift-reports",
                    prefix=f"{config.drift.reports_prefix}/",
                    expiration=Duration.days(settings.reports_expiration_days),
                ),
                s3.LifecycleRule(
                    # Hourly drift aggregates summarize capture, and go with it. They are rewritten as
                    # they grow (about every 15 minutes): a replaced version is of no use a day later.
                    id="drift-aggregates",
                    prefix=f"{config.drift.aggregates_prefix}/",
                    expiration=Duration.days(settings.capture_expiration_days),
                    noncurrent_version_expiration=Duration.days(1),
                ),
                s3.LifecycleRule(
                    id="old-versions",
                    noncurrent_version_expiration=Duration.days(settings.data_noncurrent_days),
                    abort_incomplete_multipart_upload_after=ABORT_UPLOADS_AFTER,
                ),
            ],
        )

    def _protect_versions(self) -> None:
        """Make a registered version's artifacts and card immutable for every principal, not only in our code.

        S3 refuses a write with ``If-None-Match: *`` when the key exists, so requiring that header makes
        artifacts write-once. The card may also be replaced with ``If-Match`` on its current ETag: only
        ``mlops upgrade-registry`` does that (with the operator's credentials), after the fidelity check, to
        point a legacy version at its new graph. ``status.json`` in the same folder stays writable.
        """
        artifacts = [self.registry.arn_for_objects(VERSION_OBJECTS + name) for name in ARTIFACT_FILES.values()]
        self.registry.add_to_resource_policy(
            iam.PolicyStatement(
                sid="ArtifactsAreWriteOnce",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=artifacts,
                conditions={"Null": {"s3:if-none-match": "true"}},
            )
        )
        self.registry.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CardsAreWrittenConditionally",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:PutObject"],
                resources=[self.registry.arn_for_objects(VERSION_OBJECTS + "card.json")],
                conditions={"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}},
            )
        )

    def _bucket(self, construct_id: str, log_prefix: str, lifecycle_rules: list[s3.LifecycleRule]) -> s3.Bucket:
        return s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=log_prefix,
            lifecycle_rules=lifecycle_rules,
            removal_policy=RemovalPolicy.RETAIN,
        )
