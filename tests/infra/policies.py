"""Reading IAM out of synthesized templates: which role may do which action on which resource.

Resources are flattened the way cdk-nag names them (``mlops-prod-registry-bucket-arn/models/*``
for the registry bucket's ``models/`` objects, through the storage stack's named export), so a
question is asked with the same names: ``may(role, "s3:PutObject", registry("models/x/card.json"))``.
Conditions are ignored, which can only make a role look more capable than it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from infra.nag import flatten_reference


@dataclass(frozen=True)
class Statement:
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def allows(self, action: str, resource: str) -> bool:
        return any(fnmatchcase(action.lower(), a.lower()) for a in self.actions) and any(
            fnmatchcase(resource, r) for r in self.resources
        )


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statements(document: dict[str, Any]) -> Iterator[Statement]:
    for raw in document.get("Statement", []):
        assert "NotAction" not in raw and "NotResource" not in raw, raw
        if raw.get("Effect") != "Allow":
            continue
        yield Statement(
            actions=tuple(_as_list(raw["Action"])),
            resources=tuple(flatten_reference(r) for r in _as_list(raw.get("Resource", "*"))),
        )


def role_statements(template: dict[str, Any], role_id: str) -> list[Statement]:
    """Every Allow statement of a role: inline policies, and policies (or managed policies) attached to it."""
    resources = template["Resources"]
    out = []
    for policy in resources[role_id]["Properties"].get("Policies", []):
        out.extend(_statements(policy["PolicyDocument"]))
    for resource in resources.values():
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role_id} in resource[
            "Properties"
        ].get("Roles", []):
            out.extend(_statements(resource["Properties"]["PolicyDocument"]))
    return out


def function_roles(template: dict[str, Any]) -> dict[str, str]:
    """Function name -> logical id of its role."""
    out = {}
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function":
            role = resource["Properties"]["Role"]["Fn::GetAtt"][0]
            out[resource["Properties"]["FunctionName"]] = role
    return out


def may(statements: list[Statement], action: str, resource: str) -> bool:
    return any(s.allows(action, resource) for s in statements)
