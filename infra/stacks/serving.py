"""Serving stack: the serving layer, predict and log-outcome, the ``live`` alias with its CodeDeploy canary, the API."""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.adapters.lambda_alias import PINNED_VARIABLE
from functions.config import StageConfig
from infra.access import StorageRefs, grant_key, grant_objects
from infra.assets import AssetDirs
from infra.constructs.api import PredictionApiConstruct
from infra.constructs.function import FunctionConstruct
from infra.constructs.layer import LayerConstruct
from infra.constructs.live_alias import LiveAliasConstruct
from infra.settings import InfraSettings
from layers.build import SERVING

MODELS = "models/"


class ServingStack(Stack):
    """What answers clients. Predict reads the registry and writes capture; log-outcome writes outcomes.

    ``model_version`` pins the predict version this stack publishes (``MODEL_VERSION``): the registry's
    champion at deploy time, or ``none`` before there is one. Every environment of a Lambda version then
    serves the same model, and the rollout controller publishes the versions that change it.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        settings: InfraSettings,
        assets: AssetDirs,
        storage: StorageRefs,
        model_version: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.layer = LayerConstruct(
            self, "ServingLayer", config=config, name=SERVING, path=assets.layers[SERVING]
        ).layer
        code = lambda_.Code.from_asset(str(assets.function))
        buckets = {"REGISTRY_BUCKET": storage.registry.name, "DATA_BUCKET": storage.data.name}

        self.predict = FunctionConstruct(
            self,
            "Predict",
            config=config,
            settings=settings,
            function="predict",
            code=code,
            layers={SERVING: self.layer},
            environment={**buckets, PINNED_VARIABLE: model_version},
            description="POST /predict, GET /model, GET /health, GET /openapi.json (behind the alias live)",
        )
        role = self.predict.role
        grant_objects(self.predict, role, storage.registry, read=[MODELS], purpose="load the champion's card and model")
        grant_objects(
            self.predict, role, storage.data, write=[f"{config.capture_prefix}/"], purpose="write sampled requests"
        )
        grant_key(role, storage.key_arn, encrypt=True)

        self.log_outcome = FunctionConstruct(
            self,
            "LogOutcome",
            config=config,
            settings=settings,
            function="log_outcome",
            code=code,
            layers={SERVING: self.layer},
            environment=buckets,
            description="POST /outcomes: ground truth for earlier request ids",
        )
        role = self.log_outcome.role
        grant_objects(
            self.log_outcome, role, storage.registry, read=[MODELS], purpose="resolve the champion's card for types"
        )
        grant_objects(
            self.log_outcome, role, storage.data, write=[f"{config.outcomes_prefix}/"], purpose="store outcomes"
        )
        grant_key(role, storage.key_arn, encrypt=True)

        self.live = LiveAliasConstruct(
            self, "LiveAlias", config=config, settings=settings, function=self.predict.function
        )
        self.api = PredictionApiConstruct(
            self,
            "Api",
            config=config,
            settings=settings,
            predict=self.live.alias,
            log_outcome=self.log_outcome.function,
        )
