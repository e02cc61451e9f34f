"""Converting versions registered before ONNX serving (joblib pickles) to a serving graph and a skops file.

The only place the project ever opens a pickle, and only when an operator runs
``mlops upgrade-registry``: the operator vouches for the registry's pickles, and each one is opened
only after its bytes match the SHA-256 its card recorded at registration. The converted graph goes
through the same fidelity check as every new registration (on the version's training data when
it is still there and unchanged, its reference sample and its edge rows); a version that fails
it keeps its pickle and stays unservable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.domain.card import ModelCard
from functions.domain.dataset import parse_csv
from functions.domain.packaging import package_pipeline, reference_columns
from functions.domain.pipeline_io import PINNED_LIBRARIES, library_versions, load_vouched_pickle
from functions.errors import MlopsError

Outcome = Literal["converted", "already_converted", "failed"]


@dataclass
class UpgradeResult:
    """What happened to one version."""

    model_name: str
    version: int
    outcome: Outcome
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "version": self.version, "outcome": self.outcome, "detail": self.detail}


def upgrade_registry(
    registry: S3ModelRegistry,
    datasets: S3DatasetStore | None,
    model_names: list[str] | None = None,
    progress: Callable[[str], None] = lambda _msg: None,
) -> list[UpgradeResult]:
    """Convert every unconverted version of ``model_names`` (all models when None).

    Returns:
        One result per version: converted, already converted, or failed (with the reason).
    """
    results = []
    for name in model_names or registry.list_models():
        for card in registry.list_versions(name):
            if card.serving_artifact is not None:
                results.append(UpgradeResult(name, card.version, "already_converted", "has a serving graph"))
                continue
            try:
                detail = upgrade_version(registry, datasets, card)
                results.append(UpgradeResult(name, card.version, "converted", detail))
            except MlopsError as exc:
                results.append(UpgradeResult(name, card.version, "failed", exc.message))
            progress(f"{name} v{card.version}: {results[-1].outcome}: {results[-1].detail}")
    return results


def upgrade_version(registry: S3ModelRegistry, datasets: S3DatasetStore | None, card: ModelCard) -> str:
    """Convert one version; returns what was checked. Raises ``MlopsError`` subclasses with the reason."""
    installed = library_versions()
    stale = [
        f"{lib} {card.libraries.get(lib, '?')} (installed {installed[lib]})"
        for lib in PINNED_LIBRARIES
        if card.libraries.get(lib) != installed[lib]
    ]
    if stale:
        raise MlopsError("the pickle was saved with " + ", ".join(stale) + "; convert it with those versions")
    etag = registry.card_etag(card.name, card.version)
    legacy = card.artifacts["pipeline"]
    pipeline = load_vouched_pickle(registry.read_artifact(card, "pipeline"), legacy.sha256)
    schema = card.feature_schema
    row_sets = {"reference": reference_columns(card.baseline.reference_sample, schema)}
    training = _training_rows(datasets, card)
    if training is not None:
        row_sets["training_data"] = training
    packaged = package_pipeline(pipeline, schema, card.task, card.classes, row_sets)
    upgraded = card.model_copy(
        update={
            "schema_version": 2,
            "artifacts": dict(packaged.refs),
            "serving_graph": packaged.serving_graph,
            "libraries": {**card.libraries, **packaged.libraries},
            "upgraded_from": {
                "file": legacy.file,
                "format": legacy.format,
                "sha256": legacy.sha256,
                "bytes": legacy.bytes,
                "at": datetime.now(UTC).isoformat(),
                "by": "mlops upgrade-registry",
            },
        }
    )
    upgraded = ModelCard.model_validate(upgraded.model_dump())
    registry.upgrade_version(upgraded, packaged.files, etag)
    fidelity = packaged.serving_graph.fidelity
    checked = ", ".join(f"{n} {k}" for k, n in fidelity.rows.items())
    return f"graph checked on {checked} rows, worst difference {fidelity.max_scaled_difference:.2g}"


def _training_rows(datasets: S3DatasetStore | None, card: ModelCard) -> dict[str, np.ndarray] | None:
    """Every row of the version's training data, if the data set is still there with the recorded SHA-256."""
    if datasets is None:
        return None
    try:
        text, digest = datasets.read(card.training_data.uri)
    except MlopsError:
        return None
    if digest != card.training_data.sha256:
        return None
    categorical = {f.name for f in card.feature_schema.features if f.kind == "categorical"}
    dataset = parse_csv(text, card.target, categorical, regression=card.task == "regression")
    if any(name not in dataset.columns for name in card.feature_schema.names):
        return None
    return {name: dataset.columns[name] for name in card.feature_schema.names}
