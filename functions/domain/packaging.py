"""From a trained pipeline to what the registry stores: a fidelity-checked ONNX graph, the skops pipeline, the card.

The one card builder: ``mlops train`` (``services/training.py``) and retrain (``services/retrain.py``)
both package a candidate here, so every registered version went through the same conversion and
the same fidelity check, and its card records the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from functions.domain.artifacts import sha256_hex
from functions.domain.card import (
    ARTIFACT_FILES,
    ArtifactRef,
    EstimatorSpec,
    ModelCard,
    ServingGraphInfo,
    Task,
    TrainingDataRef,
)
from functions.domain.graph import export_serving_graph
from functions.domain.pipeline_io import dump_pipeline, library_versions
from functions.domain.schema import FeatureSchema
from functions.domain.training import TrainedModel


@dataclass(frozen=True)
class PackagedModel:
    """The artifacts of one candidate, ready to register.

    Attributes:
        files: file name -> bytes (``model.onnx``, ``model.skops``), in the order they are written.
        refs: role (``serving``, ``pipeline``) -> the card's record of that file.
        serving_graph: how the graph was converted and how faithful it is.
        libraries: the versions of what trained, converted and checked it.
    """

    files: dict[str, bytes]
    refs: dict[str, ArtifactRef]
    serving_graph: ServingGraphInfo
    libraries: dict[str, str]

    @property
    def graph(self) -> bytes:
        return self.files[self.refs["serving"].file]

    @property
    def serving_bytes(self) -> int:
        return self.refs["serving"].bytes


def reference_columns(sample: dict[str, list[Any]], schema: FeatureSchema) -> dict[str, np.ndarray]:
    """The card's reference sample as typed columns (float64 numeric, object categorical)."""
    return {
        f.name: np.asarray(sample[f.name], dtype=np.float64 if f.kind == "numeric" else object) for f in schema.features
    }


def package_pipeline(
    pipeline: Any,
    schema: FeatureSchema,
    task: Task,
    classes: list[Any] | None,
    row_sets: dict[str, dict[str, np.ndarray]],
) -> PackagedModel:
    """Convert a fitted pipeline to ONNX, check the graph on ``row_sets`` (plus edge rows), serialise both.

    Raises:
        GraphFidelityError: the graph does not reproduce the pipeline; nothing may be registered.
    """
    graph, info = export_serving_graph(pipeline, schema, task, classes, row_sets)
    stored = dump_pipeline(pipeline)
    refs = {
        "serving": ArtifactRef(file=ARTIFACT_FILES["onnx"], format="onnx", sha256=sha256_hex(graph), bytes=len(graph)),
        "pipeline": ArtifactRef(
            file=ARTIFACT_FILES["skops"], format="skops", sha256=sha256_hex(stored), bytes=len(stored)
        ),
    }
    files = {refs["serving"].file: graph, refs["pipeline"].file: stored}
    return PackagedModel(files=files, refs=refs, serving_graph=info, libraries={**library_versions(), **info.versions})


def package_model(trained: TrainedModel, task: Task) -> PackagedModel:
    """``package_pipeline`` for a freshly trained model, checked on its validation rows and reference sample."""
    row_sets = {
        "validation": {name: trained.validation.columns[name] for name in trained.schema.names},
        "reference": reference_columns(trained.baseline.reference_sample, trained.schema),
    }
    return package_pipeline(trained.model, trained.schema, task, trained.classes, row_sets)


@dataclass(frozen=True)
class CardFacts:
    """What a card says besides the artifacts: who trained what, from which data, and how well."""

    name: str
    task: Task
    target: str
    estimator: EstimatorSpec
    training_data: TrainingDataRef
    metrics: dict[str, float]
    primary_metric: str
    parent_version: int | None = None
    description: str = ""


def card_builder(
    packaged: PackagedModel, trained: TrainedModel, facts: CardFacts, clock: Callable[[], datetime]
) -> Callable[[int], ModelCard]:
    """The card of the version the registry allocates (its number is known only then)."""

    def build(version: int) -> ModelCard:
        return ModelCard(
            name=facts.name,
            version=version,
            created_at=clock(),
            artifacts=dict(packaged.refs),
            serving_graph=packaged.serving_graph,
            libraries=packaged.libraries,
            task=facts.task,
            target=facts.target,
            classes=trained.classes,
            feature_schema=trained.schema,
            training_data=facts.training_data,
            estimator=facts.estimator,
            metrics=facts.metrics,
            primary_metric=facts.primary_metric,
            baseline=trained.baseline,
            parent_version=facts.parent_version,
            description=facts.description,
        )

    return build
