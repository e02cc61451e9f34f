"""Training a model from a dataset in the data bucket and registering it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.domain.artifacts import dump_model, library_versions, sha256_hex
from functions.domain.card import ModelCard, TrainingDataRef
from functions.domain.dataset import parse_csv
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
    artifact = dump_model(trained.model)
    digest = sha256_hex(artifact)
    progress(f"validation {trained.primary_metric}={trained.metrics[trained.primary_metric]:.4f}; registering")

    def build_card(version: int) -> ModelCard:
        return ModelCard(
            name=model_name,
            version=version,
            created_at=datetime.now(UTC),
            artifact_sha256=digest,
            artifact_bytes=len(artifact),
            libraries=library_versions(),
            task=spec.task,
            target=spec.target,
            classes=trained.classes,
            feature_schema=trained.schema,
            training_data=TrainingDataRef(
                uri=dataset_uri,
                sha256=data_sha,
                rows=dataset.n_rows,
                target=spec.target,
                train_rows=trained.train_rows,
                validation_rows=trained.validation_rows,
            ),
            estimator=spec.estimator,
            metrics=trained.metrics,
            primary_metric=trained.primary_metric,
            baseline=trained.baseline,
            parent_version=parent_version,
            description=description,
        )

    card = registry.register(model_name, artifact, build_card)
    if "champion" not in registry.get_aliases(model_name):
        try:
            registry.set_aliases(
                model_name, {"champion": card.version}, expect={"champion": None}, reason="first registered version"
            )
            progress(f"version {card.version} is the first of {model_name}: now champion")
        except ConcurrentUpdateError:
            progress(f"another registration became champion first; version {card.version} is registered only")
    return card
