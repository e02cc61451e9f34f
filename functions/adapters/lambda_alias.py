"""Lambda versions and the weighted alias that API Gateway calls."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import MlopsError, StorageError

PINNED_VARIABLE = "MODEL_VERSION"


class DeploymentError(MlopsError):
    """Lambda refused a version or alias change, or a requested weight is impossible."""

    code = "deployment_error"


@dataclass
class AliasRouting:
    """Where the alias sends traffic: the stable version, plus extra versions with their weights."""

    stable_version: str
    weights: dict[str, float] = field(default_factory=dict)
    revision_id: str | None = None


def check_weight(weight: float) -> float:
    """AWS accepts additional-version weights in [0, 1); moto does not check, so we do."""
    if not (math.isfinite(weight) and 0.0 <= weight < 1.0):
        raise DeploymentError(f"alias weight must be in [0, 1), got {weight!r}")
    return weight


class LambdaAliasDeployer:
    """Publishes predict versions pinned to a model version and moves the alias weights."""

    def __init__(self, lambda_client: Any, function_name: str, alias_name: str) -> None:
        self._lambda = lambda_client
        self.function_name = function_name
        self.alias_name = alias_name

    def _call(self, what: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._lambda, what)(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            raise DeploymentError(f"lambda {what} on {self.function_name} failed: {code}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"lambda {what} on {self.function_name} failed: {type(exc).__name__}") from exc

    def routing(self) -> AliasRouting:
        alias = self._call("get_alias", FunctionName=self.function_name, Name=self.alias_name)
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return AliasRouting(
            stable_version=str(alias["FunctionVersion"]),
            weights={str(k): float(v) for k, v in weights.items()},
            revision_id=alias.get("RevisionId"),
        )

    def variables(self, function_version: str) -> dict[str, str]:
        """The environment variables a Lambda version was published with."""
        config = self._call("get_function_configuration", FunctionName=self.function_name, Qualifier=function_version)
        return dict((config.get("Environment") or {}).get("Variables") or {})

    def pinned_model_version(self, function_version: str) -> int | None:
        """The model version a Lambda version serves by its pin (None: unpinned, or deployed with no champion)."""
        value = self.variables(function_version).get(PINNED_VARIABLE)
        return int(value) if value and value.isdigit() else None

    def _existing_pinned(self, model_version: int, code_sha: str) -> str | None:
        marker = f"model v{model_version}"
        paginator = self._lambda.get_paginator("list_versions_by_function")
        try:
            for page in paginator.paginate(FunctionName=self.function_name):
                for version in page["Versions"]:
                    if version["Version"] == "$LATEST" or version.get("Description") != marker:
                        continue
                    variables = (version.get("Environment") or {}).get("Variables") or {}
                    if variables.get(PINNED_VARIABLE) == str(model_version) and version.get("CodeSha256") == code_sha:
                        return str(version["Version"])
        except ClientError as exc:
            raise DeploymentError(f"listing versions of {self.function_name} failed") from exc
        return None

    def publish_pinned(self, model_version: int) -> str:
        """A Lambda version serving exactly ``model_version``; reuses one published earlier (idempotent)."""
        latest = self._call("get_function_configuration", FunctionName=self.function_name)
        existing = self._existing_pinned(model_version, latest.get("CodeSha256", ""))
        if existing is not None:
            return existing
        original = dict((latest.get("Environment") or {}).get("Variables") or {})
        self._set_environment({**original, PINNED_VARIABLE: str(model_version)})
        try:
            published = self._call(
                "publish_version", FunctionName=self.function_name, Description=f"model v{model_version}"
            )
        finally:
            # $LATEST goes back to resolving the champion, so a later code deployment never ships this pin.
            self._set_environment(original)
        return str(published["Version"])

    def _set_environment(self, variables: dict[str, str]) -> None:
        self._call(
            "update_function_configuration", FunctionName=self.function_name, Environment={"Variables": variables}
        )
        waiter = self._lambda.get_waiter("function_updated_v2")
        waiter.wait(FunctionName=self.function_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})

    def set_canary(
        self, stable_version: str, canary_version: str, weight: float, revision_id: str | None = None
    ) -> None:
        """Send ``weight`` of the traffic to ``canary_version`` and the rest to ``stable_version``.

        With ``revision_id``, Lambda refuses the change if the alias was updated since that revision
        was read (moto ignores it; the rollout state's compare-and-swap is what the tests rely on).
        """
        weights = {canary_version: weight} if check_weight(weight) > 0 else {}
        self._update(stable_version, weights, revision_id)

    def route_all(self, function_version: str, revision_id: str | None = None) -> None:
        """All traffic to one version, no canary (``revision_id`` as in ``set_canary``)."""
        self._update(function_version, {}, revision_id)

    def _update(self, stable_version: str, weights: dict[str, float], revision_id: str | None) -> None:
        kwargs: dict[str, Any] = {
            "FunctionName": self.function_name,
            "Name": self.alias_name,
            "FunctionVersion": stable_version,
            "RoutingConfig": {"AdditionalVersionWeights": weights},
        }
        if revision_id:
            kwargs["RevisionId"] = revision_id
        self._call("update_alias", **kwargs)
