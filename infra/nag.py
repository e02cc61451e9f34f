"""cdk-nag: the rule packs every synthesis runs, and acknowledgments that name each finding and say why.

cdk-nag 3 reports through CDK's policy validation: packs are registered with
``Validations.of(app).add_plugins`` and a finding is acknowledged with
``Validations.of(construct).acknowledge`` by its exact id (``AwsSolutions-IAM5[Resource::...]`` for
one wildcard of one policy). ``wildcard_findings`` computes those ids the way cdk-nag renders them,
so each wildcard a construct grants is acknowledged where it is granted, with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aws_cdk import Acknowledgment, Stack, Validations
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks, NagPack, ServerlessChecks
from constructs import IConstruct


def rule_packs(scope: IConstruct) -> list[NagPack]:
    """AWS Solutions, and the Serverless pack (functions, API Gateway, EventBridge, SQS, SNS)."""
    return [AwsSolutionsChecks(scope), ServerlessChecks(scope)]


def add_rule_packs(app: IConstruct) -> None:
    """Run the packs at synthesis: any unacknowledged finding fails ``app.synth()``."""
    Validations.of(app).add_plugins(*rule_packs(app))


RECORD_ONLY = "mlops:nag-record-only"


@dataclass(frozen=True)
class Acknowledged:
    """One acknowledgment: the construct it covers (and its children), the finding id, why."""

    path: str
    finding: str
    reason: str

    def covers(self, construct_path: str, finding: str) -> bool:
        return finding == self.finding and (construct_path == self.path or construct_path.startswith(self.path + "/"))


_ACKNOWLEDGED: dict[str, list[Acknowledged]] = {}


def acknowledge(scope: IConstruct, finding: str, reason: str) -> None:
    """Acknowledge one finding on ``scope`` and everything under it (and record it, see ``acknowledged``).

    With the context value ``mlops:nag-record-only`` set, the acknowledgment is only recorded: a
    test then checks that every acknowledgment matches a finding the packs really report.
    """
    _ACKNOWLEDGED.setdefault(scope.node.root.node.addr, []).append(Acknowledged(scope.node.path, finding, reason))
    if not scope.node.try_get_context(RECORD_ONLY):
        Validations.of(scope).acknowledge(Acknowledgment(id=finding, reason=reason))


def acknowledged(app: IConstruct) -> list[Acknowledged]:
    """Every acknowledgment made in ``app``'s construct tree."""
    return list(_ACKNOWLEDGED.get(app.node.addr, []))


def _join(value: Any) -> str:
    delimiter, items = value
    return str(delimiter).join(flatten_reference(item) for item in items)


def _get_att(value: Any) -> str:
    resource, attribute = value
    return f"<{flatten_reference(resource)}.{flatten_reference(attribute)}>"


def flatten_reference(node: Any) -> str:
    """A CloudFormation value as cdk-nag flattens it into a finding id (utils/flatten-cfn-reference)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node.replace("${", "<").replace("}", ">")
    if isinstance(node, dict):
        for name, render in _INTRINSICS.items():
            if name in node:
                return str(render(node[name]))
    return json.dumps(node, separators=(",", ":"))


_INTRINSICS: dict[str, Callable[[Any], str]] = {
    "Fn::Join": _join,
    "Fn::Sub": flatten_reference,
    "Fn::GetAtt": _get_att,
    "Fn::ImportValue": flatten_reference,
    "Ref": lambda value: f"<{flatten_reference(value)}>",
}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def wildcard_findings(scope: IConstruct, statements: Iterable[iam.PolicyStatement]) -> list[str]:
    """The ``AwsSolutions-IAM5[...]`` ids the wildcards of ``statements`` raise (resolved in ``scope``'s stack).

    Only values that resolve the same at construction and in the template may be used in such
    statements: literals, pseudo parameters, same-stack attributes and named imports.
    """
    stack = Stack.of(scope)
    found: list[str] = []
    for statement in statements:
        doc = stack.resolve(statement.to_statement_json())
        if doc.get("Effect") != "Allow":
            continue
        items = [f"Action::{a}" for a in _as_list(doc.get("Action", [])) if "*" in a]
        items += [f"Resource::{r}" for r in map(flatten_reference, _as_list(doc.get("Resource", []))) if "*" in r]
        found.extend(f"AwsSolutions-IAM5[{item}]" for item in items if f"AwsSolutions-IAM5[{item}]" not in found)
    return found


def acknowledge_wildcards(scope: IConstruct, statements: Iterable[iam.PolicyStatement], reason: str) -> None:
    """Acknowledge every wildcard finding of ``statements`` on ``scope`` with ``reason``."""
    for finding in wildcard_findings(scope, statements):
        acknowledge(scope, finding, reason)
