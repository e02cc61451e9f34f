"""The scientific Python layer (numpy, scipy, scikit-learn, joblib, Powertools, pydantic) built by layers/build.py."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.config import StageConfig

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64


class ScientificLayerConstruct(Construct):
    """One LayerVersion for every function, for the runtime and architecture the layer is built for."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, path: Path) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            layer_version_name=config.resource_name("scientific-python"),
            code=lambda_.Code.from_asset(str(path)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="numpy, scipy, scikit-learn, joblib, Powertools, pydantic for python3.12 x86_64 (make layer)",
            # Published Lambda versions pinned to a model keep using older layer versions.
            removal_policy=RemovalPolicy.RETAIN,
        )
