"""The Lambda layers built by layers/build.py: the serving layer of every function, the science layer of the loop."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from functions.config import StageConfig
from layers.build import LAYER_DESCRIPTIONS

RUNTIME = lambda_.Runtime.PYTHON_3_12
ARCHITECTURE = lambda_.Architecture.X86_64


class LayerConstruct(Construct):
    """One LayerVersion (``serving`` or ``science``), for the runtime and architecture the layers are built for."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig, name: str, path: Path) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            layer_version_name=config.resource_name(f"{name}-python"),
            code=lambda_.Code.from_asset(str(path)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=f"{LAYER_DESCRIPTIONS[name]} for python3.12 x86_64 (make layer)",
            # Published Lambda versions pinned to a model keep using older layer versions.
            removal_policy=RemovalPolicy.RETAIN,
        )
