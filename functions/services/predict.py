"""Serving predictions from one loaded model version."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic_core

from functions.adapters.capture import CaptureRecord, CaptureWriter
from functions.adapters.registry import S3ModelRegistry
from functions.domain.card import ModelCard
from functions.domain.inference import ServingGraph, infer, load_serving_graph
from functions.domain.requests import RequestDecoder
from functions.errors import UnconvertedModelError

UPGRADE_COMMAND = "mlops upgrade-registry"


@dataclass
class LoadedModel:
    """A model version's card and its verified serving graph, which has answered its canned prediction."""

    card: ModelCard
    model: ServingGraph


@dataclass
class PredictStats:
    """What one request did, for metrics and logs."""

    rows: int
    out_of_range: int
    captured: bool
    latency_ms: float


@dataclass
class PredictResult:
    """The serialised answer, what happened, and the sampled rows for capture (None when not sampled).

    The caller hands ``capture`` to the writer after everything else (metrics included): from then
    on the writer thread competes for the GIL, and the answer is already complete.
    """

    body: bytes
    stats: PredictStats
    capture: CaptureRecord | None = None


@dataclass
class PredictService:
    """Validates requests against the model card, predicts, and hands a sample to capture."""

    loaded: LoadedModel
    max_rows: int
    capture: CaptureWriter | None = None
    sample_rate: float = 1.0
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        card = self.loaded.card
        self._classes = np.asarray(card.classes, dtype=object) if card.classes is not None else None
        self._class_list = list(card.classes) if card.classes is not None else None
        self._ranges = {f.name: (f.minimum, f.maximum) for f in card.feature_schema.features}
        self._decoder = RequestDecoder(card.feature_schema, self.max_rows)
        self._suffixes = [f"-{i}" for i in range(self.max_rows)]

    @property
    def model_version(self) -> int:
        return self.loaded.card.version

    def predict(self, body: str | bytes | None, request_id: str) -> PredictResult:
        """Answer one request.

        Args:
            body: the raw JSON body.
            request_id: the API Gateway request id; row ``i`` gets ``"<request_id>-<i>"``.

        Returns:
            The serialised response and what happened. Validation errors raise ``ValidationError``.
        """
        started = time.perf_counter()
        card = self.loaded.card
        batch = self._decoder.decode(body)
        outputs = infer(self.loaded.model, batch, card, self._classes)
        n = batch.n_rows
        response: dict[str, Any] = {
            "request_id": request_id,
            "model_name": card.name,
            "model_version": card.version,
            "request_ids": [request_id + suffix for suffix in self._suffixes[:n]],
            "predictions": outputs.predictions.tolist(),
        }
        if outputs.probabilities is not None:
            response["classes"] = self._class_list
            response["probabilities"] = outputs.probabilities.tolist()
        response["out_of_range"] = [
            {
                "row": o.row,
                "field": o.field,
                "value": o.value,
                "minimum": self._ranges[o.field][0],
                "maximum": self._ranges[o.field][1],
            }
            for o in batch.out_of_range
        ]
        body_out = pydantic_core.to_json(response)
        record = None
        if self.capture is not None and (self.sample_rate >= 1.0 or self.rng.random() < self.sample_rate):
            record = CaptureRecord(
                request_id=request_id,
                timestamp=time.time(),
                model_version=card.version,
                columns=batch.columns,
                predictions=outputs.predictions,
                probabilities=outputs.probabilities,
                n_rows=n,
            )
        stats = PredictStats(
            rows=n,
            out_of_range=len(batch.out_of_range),
            captured=record is not None,
            latency_ms=(time.perf_counter() - started) * 1000.0,
        )
        return PredictResult(body=body_out, stats=stats, capture=record)


def load_serving_model(registry: S3ModelRegistry, name: str, version: int | None, alias: str) -> LoadedModel:
    """The pinned ``version`` if given, else whatever ``alias`` points at now: its graph, hash-checked and probed.

    Raises:
        UnconvertedModelError: the version predates ONNX serving (a pickle only); the message names the command.
        ArtifactIntegrityError: the graph is missing or is not the one the card describes.
        GraphLoadError: onnxruntime cannot load it, or it fails its canned prediction.
    """
    resolved = version if version is not None else registry.resolve(name, alias)
    card = registry.get_card(name, resolved)
    if card.serving_artifact is None:
        raise UnconvertedModelError(
            f"model {name!r} version {resolved} was registered before ONNX serving and has no serving graph; "
            f"an operator converts it with `{UPGRADE_COMMAND}`"
        )
    graph = registry.read_artifact(card, "serving")
    return LoadedModel(card=card, model=load_serving_graph(graph, card))
