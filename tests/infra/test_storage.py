"""Storage stack: versioned, encrypted, private, TLS-only, logged, lifecycled buckets that outlive a destroy."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match

from functions.adapters.locks import LOCK_PREFIX
from functions.config import STORAGE_EXPORTS

from .synthesis import Synthesized


def _buckets(synth: Synthesized, stage: str) -> dict[str, dict[str, Any]]:
    """'RegistryBucket' / 'DataBucket' / 'AccessLogsBucket' -> resource."""
    found = synth.resources(stage, "storage", "AWS::S3::Bucket")
    out = {}
    for name in ("RegistryBucket", "DataBucket", "AccessLogsBucket"):
        (match,) = [v for k, v in found.items() if k.startswith(f"Storage{name}")]
        out[name] = match
    return out


def _rules(bucket: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["Id"]: r for r in bucket["Properties"]["LifecycleConfiguration"]["Rules"]}


def test_every_bucket_is_private_encrypted_and_retained(synth: Synthesized, stage: str):
    for name, bucket in _buckets(synth, stage).items():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }, name
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain"), name
        assert "BucketName" not in props, f"{name}: S3 names are global, CloudFormation generates them"


def test_registry_and_data_are_versioned_kms_encrypted_and_logged(synth: Synthesized, stage: str):
    buckets = _buckets(synth, stage)
    logs_id = next(k for k in synth.resources(stage, "storage", "AWS::S3::Bucket") if "AccessLogs" in k)
    for name in ("RegistryBucket", "DataBucket"):
        props = buckets[name]["Properties"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        assert rule["BucketKeyEnabled"] is True
        assert props["LoggingConfiguration"]["DestinationBucketName"] == {"Ref": logs_id}
    synth.template(stage, "storage").has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})


def test_every_bucket_refuses_plain_http(synth: Synthesized, stage: str):
    policies = synth.resources(stage, "storage", "AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s["Action"] == "s3:*"
            and s["Condition"].get("Bool", {}).get("aws:SecureTransport") == "false"
            for s in statements
        )


def test_capture_transitions_and_expires_as_the_stage_says(synth: Synthesized, stage: str, stage_settings):
    config, settings = stage_settings[stage]
    rules = _rules(_buckets(synth, stage)["DataBucket"])
    capture = rules["capture"]
    assert capture["Prefix"] == f"{config.capture_prefix}/"
    assert capture["ExpirationInDays"] == settings.storage.capture_expiration_days
    assert capture["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": settings.storage.capture_transition_days}
    ]
    assert capture["ExpirationInDays"] > config.retrain.capture_days
    assert rules["drift-reports"]["Prefix"] == f"{config.drift.reports_prefix}/"
    aggregates = rules["drift-aggregates"]
    assert aggregates["Prefix"] == f"{config.drift.aggregates_prefix}/"
    assert aggregates["ExpirationInDays"] == capture["ExpirationInDays"]  # they summarize capture, and go with it
    assert aggregates["NoncurrentVersionExpiration"]["NoncurrentDays"] == 1  # rewritten as they grow
    assert (
        rules["old-versions"]["NoncurrentVersionExpiration"]["NoncurrentDays"] == settings.storage.data_noncurrent_days
    )


def test_registry_expires_only_old_lock_versions(synth: Synthesized, stage: str):
    rules = _rules(_buckets(synth, stage)["RegistryBucket"])
    locks = rules["expire-old-lock-versions"]
    assert locks["Prefix"] == f"{LOCK_PREFIX.split('/')[0]}/"
    assert "NoncurrentVersionExpiration" in locks and locks["ExpiredObjectDeleteMarker"] is True
    for rule in rules.values():
        assert "ExpirationInDays" not in rule, "models are never expired"
        assert rule.get("Prefix") != "models/"


def test_exports_are_the_names_other_stacks_import(synth: Synthesized, stage: str, stage_settings):
    config, _ = stage_settings[stage]
    exported = {o["Export"]["Name"] for o in synth.json(stage, "storage")["Outputs"].values()}
    imported: set[str] = set()

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            if "Fn::ImportValue" in node:
                imported.add(node["Fn::ImportValue"])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    for role in ("serving", "monitoring"):
        collect(synth.json(stage, role))
    assert imported == exported
    assert exported == {config.export_name(what) for what in STORAGE_EXPORTS}  # one list, in functions/config.py
    synth.template(stage, "storage").has_output("*", {"Export": {"Name": Match.string_like_regexp("-data-key-arn$")}})


def _registry_statements(synth: Synthesized, stage: str) -> dict[str, dict[str, Any]]:
    buckets = synth.resources(stage, "storage", "AWS::S3::Bucket")
    (registry_id,) = [i for i in buckets if i.startswith("StorageRegistryBucket") or "RegistryBucket" in i]
    for policy in synth.resources(stage, "storage", "AWS::S3::BucketPolicy").values():
        if policy["Properties"]["Bucket"] == {"Ref": registry_id}:
            return {s.get("Sid", ""): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}
    raise AssertionError("no policy on the registry bucket")


def _suffixes(statement: dict[str, Any]) -> set[str]:
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return {json.dumps(r).rsplit("/models/", 1)[-1].rstrip('"]}') for r in resources}


def test_a_versions_artifacts_and_card_cannot_be_overwritten_by_any_principal(synth: Synthesized, stage: str):
    statements = _registry_statements(synth, stage)

    artifacts = statements["ArtifactsAreWriteOnce"]
    assert (artifacts["Effect"], artifacts["Principal"], artifacts["Action"]) == ("Deny", {"AWS": "*"}, "s3:PutObject")
    assert artifacts["Condition"] == {"Null": {"s3:if-none-match": "true"}}
    assert _suffixes(artifacts) == {f"*/versions/*/{name}" for name in ("model.onnx", "model.skops", "model.joblib")}

    card = statements["CardsAreWrittenConditionally"]
    assert (card["Effect"], card["Principal"], card["Action"]) == ("Deny", {"AWS": "*"}, "s3:PutObject")
    assert card["Condition"] == {"Null": {"s3:if-none-match": "true", "s3:if-match": "true"}}
    assert _suffixes(card) == {"*/versions/*/card.json"}
    # Everything else in the registry (aliases, status, rollout state, locks) stays writable by its roles.
    assert not any("status.json" in json.dumps(s) or "aliases" in json.dumps(s) for s in statements.values())
