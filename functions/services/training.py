"""Training a model from a dataset in the data bucket and registering it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.domain.card import ModelCard, TrainingDataRef
from functions.domain.dataset import parse_csv
from functions.domain.packaging import CardFacts, card_builder, package_model
from functions.domain.training import TrainingSpec, train
from functions.errors import ConcurrentUpdateError


def train_and_register(
    registry: S3ModelRegistry,
    datasets: S3DatasetStore,
    *,
    model_name: str,
    dataset_uri: str,
    spec: TrainingSpec,
    parent_version: int | None = None,
    description: str = "",
    progress: Callable[[str], None] = lambda _msg: None,
) -> ModelCard:
    """Train ``spec`` on the CSV at ``dataset_uri`` and register the result as a new version.

    The pipeline is converted to ONNX and checked against itself first (``package_model``): a
    graph that does not reproduce it raises ``GraphFidelityError`` and nothing is registered.
    The first version of a model also becomes its ``champion``, so a fresh registry serves at
    once; later versions are registered only, and an operator or the rollout promotes them.

    Returns:
        The registered model card.
    """
    progress(f"reading {dataset_uri}")
    text, data_sha = datasets.read(dataset_uri)
    dataset = parse_csv(text, spec.target, set(spec.categorical), regression=spec.task == "regression")
    progress(f"training {spec.estimator.kind} on {dataset.n_rows} rows x {len(dataset.columns)} features")
    trained = train(dataset, spec)
    progress(f"validation {trained.primary_metric}={trained.metrics[trained.primary_metric]:.4f}; converting to ONNX")
    packaged = package_model(trained, spec.task)
    fidelity = packaged.serving_graph.fidelity
    progress(
        f"ONNX graph reproduces the pipeline on {sum(fidelity.rows.values())} rows "
        f"(worst difference {fidelity.max_scaled_difference:.2g}, limit {fidelity.tolerance:g}); registering"
    )
    facts = CardFacts(
        name=model_name,
        task=spec.task,
        target=spec.target,
        estimator=spec.estimator,
        training_data=TrainingDataRef(
            uri=dataset_uri,
            sha256=data_sha,
            rows=dataset.n_rows,
            target=spec.target,
            train_rows=trained.train_rows,
            validation_rows=trained.validation_rows,
        ),
        metrics=trained.metrics,
        primary_metric=trained.primary_metric,
        parent_version=parent_version,
        description=description,
    )
    card = registry.register(
        model_name, packaged.files, card_builder(packaged, trained, facts, lambda: datetime.now(UTC))
    )
    if "champion" not in registry.get_aliases(model_name):
        try:
            registry.set_aliases(
                model_name, {"champion": card.version}, expect={"champion": None}, reason="first registered version"
            )
            progress(f"version {card.version} is the first of {model_name}: now champion")
        except ConcurrentUpdateError:
            progress(f"another registration became champion first; version {card.version} is registered only")
    return card
