"""Running a model's ONNX serving graph on a validated batch (onnxruntime; scikit-learn is never loaded here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from functions.domain.card import CannedPrediction, ModelCard
from functions.domain.schema import Batch, FeatureSchema
from functions.errors import FieldError, MlopsError, ValidationError

# A classifier graph names its probability output so; a regressor has one output.
PROBABILITIES = "probabilities"
CANNED_TOLERANCE = 1e-6


class ModelOutputError(MlopsError):
    """The model produced non-finite outputs: a fault of the model, never of the client."""

    code = "model_output_error"


class GraphLoadError(MlopsError):
    """The serving graph cannot be loaded, does not take the schema's inputs, or fails its canned prediction."""

    code = "graph_load_error"


@dataclass
class Outputs:
    """Predictions (labels or values) and, for classifiers, class probabilities."""

    predictions: np.ndarray
    probabilities: np.ndarray | None


def graph_inputs(schema: FeatureSchema) -> list[str]:
    """The graph's input names: one matrix ``X`` for all-numeric schemas, else ``f0``, ``f1``, ... per feature."""
    return ["X"] if schema.all_numeric else [f"f{i}" for i in range(len(schema.features))]


def session_options() -> ort.SessionOptions:
    """One thread, sequential execution: a Lambda environment has one vCPU or less and serves one request."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


class ServingGraph:
    """An InferenceSession over one model version's graph, fed in the schema's column order."""

    def __init__(self, graph: bytes, schema: FeatureSchema, output: str) -> None:
        try:
            self._session = ort.InferenceSession(
                graph, sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind exceptions
            raise GraphLoadError(f"onnxruntime cannot load the serving graph: {type(exc).__name__}") from exc
        self.schema = schema
        self._names = schema.names
        self._inputs = graph_inputs(schema)
        found = [i.name for i in self._session.get_inputs()]
        if found != self._inputs:
            raise GraphLoadError(f"the serving graph takes inputs {found}, the schema needs {self._inputs}")
        outputs = [o.name for o in self._session.get_outputs()]
        if output not in outputs:
            raise GraphLoadError(f"the serving graph has no output {output!r} (it has {outputs})")
        self._output = [output]
        self._matrix = schema.all_numeric

    def feeds(self, matrix: np.ndarray | None, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph's inputs for a batch: the float64 matrix, or one ``(n, 1)`` column per feature."""
        if self._matrix:
            if matrix is None:
                matrix = np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in self._names])
            return {"X": np.ascontiguousarray(matrix, dtype=np.float64)}
        out = {}
        for key, spec in zip(self._inputs, self.schema.features, strict=True):
            col = columns[spec.name]
            dtype = np.float64 if spec.kind == "numeric" else object
            out[key] = np.asarray(col, dtype=dtype).reshape(-1, 1)
        return out

    def run(self, matrix: np.ndarray | None, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities ``(n, classes)`` of a classifier or values ``(n,)`` of a regressor, as float64."""
        try:
            result = self._session.run(self._output, self.feeds(matrix, columns))[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own exception types
            raise ModelOutputError(f"the serving graph failed: {type(exc).__name__}") from exc
        values = np.asarray(result, dtype=np.float64)
        return values if values.ndim == 2 and self._output[0] == PROBABILITIES else values.reshape(-1)

    def run_canned(self, canned: CannedPrediction) -> None:
        """Answer the card's reference row and compare with the answer recorded at registration.

        Raises:
            GraphLoadError: the graph fails on it, or answers something else.
        """
        columns = {f.name: np.array([canned.features[f.name]], dtype=object) for f in self.schema.features}
        for f in self.schema.features:
            if f.kind == "numeric":
                columns[f.name] = columns[f.name].astype(np.float64)
        try:
            got = self.run(None, columns).reshape(-1)
        except ModelOutputError as exc:
            raise GraphLoadError(f"the serving graph cannot answer its canned prediction: {exc.message}") from exc
        expected = np.asarray(canned.outputs, dtype=np.float64)
        scale = np.maximum(1.0, np.abs(expected))
        if got.shape != expected.shape or not np.all(np.abs(got - expected) <= CANNED_TOLERANCE * scale):
            raise GraphLoadError(
                f"the serving graph answered {got.tolist()} for its canned prediction, "
                f"registration recorded {expected.tolist()}"
            )


def load_serving_graph(graph: bytes, card: ModelCard) -> ServingGraph:
    """The card's verified graph bytes as a session that has answered the card's canned prediction."""
    info = card.serving_graph
    if info is None:
        raise GraphLoadError(f"model {card.name!r} version {card.version} has no serving graph")
    loaded = ServingGraph(graph, card.feature_schema, info.output)
    loaded.run_canned(info.canned)
    return loaded


def infer(model: ServingGraph, batch: Batch, card: ModelCard, classes: np.ndarray | None) -> Outputs:
    """Predict ``batch``; classifiers predict the most probable class.

    Args:
        model: the loaded serving graph.
        batch: validated inputs.
        card: the model's card (decides classifier vs regressor).
        classes: the class labels in model order (classifiers only).

    Raises:
        ValidationError: the model failed on values far outside the training range (the client's input).
        ModelOutputError: the model failed on ordinary input (a fault of ours, a 5xx).
    """
    try:
        outputs = _run(model, batch, card, classes)
    except ModelOutputError as exc:
        if batch.out_of_range:
            raise ValidationError(
                "the model cannot predict values this far outside its training range",
                [
                    FieldError(o.field, f"{o.value:g} is far outside the training range; the model fails on it", o.row)
                    for o in batch.out_of_range[:20]
                ],
            ) from exc
        raise
    return outputs


def _run(model: ServingGraph, batch: Batch, card: ModelCard, classes: np.ndarray | None) -> Outputs:
    values = model.run(batch.matrix, batch.columns)
    if not np.isfinite(values).all():
        raise ModelOutputError("model returned non-finite outputs")
    if card.is_classifier:
        assert classes is not None
        return Outputs(predictions=classes[values.argmax(axis=1)], probabilities=values)
    return Outputs(predictions=values, probabilities=None)


def outputs_of(values: Any) -> list[float]:
    """A graph's answer for one row as a flat list of floats (for the canned prediction)."""
    return [float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1)]
