"""Hand-built ONNX graphs and registrations of them, for tests of how serving treats a bad version."""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from functions.adapters.registry import S3ModelRegistry
from functions.domain.artifacts import sha256_hex
from functions.domain.card import ModelCard


def nan_except_at(features: int, value: float) -> bytes:
    """A classifier graph answering [0.5, 0.5] where ``X[:, 0] == value`` and NaN on every other row.

    ``0.5 + sqrt(-(x0 - value)**2)``: the square root of a negative number is NaN, of -0 is -0.
    """
    initializers = [
        numpy_helper.from_array(np.asarray([0], dtype=np.int64), "start"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), "end"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), "axis"),
        numpy_helper.from_array(np.asarray([value], dtype=np.float64), "value"),
        numpy_helper.from_array(np.asarray([0.5], dtype=np.float64), "half"),
    ]
    nodes = [
        helper.make_node("Slice", ["X", "start", "end", "axis"], ["x0"]),
        helper.make_node("Sub", ["x0", "value"], ["d"]),
        helper.make_node("Mul", ["d", "d"], ["d2"]),
        helper.make_node("Neg", ["d2"], ["minus_d2"]),
        helper.make_node("Sqrt", ["minus_d2"], ["root"]),
        helper.make_node("Add", ["root", "half"], ["p"]),
        helper.make_node("Concat", ["p", "p"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "nan-except-at",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, features])],
        [helper.make_tensor_value_info("probabilities", TensorProto.DOUBLE, [None, 2])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


def canned_nan_graph(card: ModelCard) -> tuple[bytes, list[float]]:
    """A graph that answers ``card``'s canned prediction (with [0.5, 0.5]) and NaN for any other first feature."""
    assert card.serving_graph is not None and card.feature_schema.all_numeric
    first = card.feature_schema.names[0]
    value = float(card.serving_graph.canned.features[first])
    return nan_except_at(len(card.feature_schema.features), value), [0.5, 0.5]


def register_graph(
    registry: S3ModelRegistry,
    like: ModelCard,
    graph: bytes,
    canned: list[float] | None = None,
    **changes: Any,
) -> ModelCard:
    """Register ``graph`` as the next version of ``like``'s model, with ``like``'s card and pipeline.

    ``canned`` replaces the recorded answer to the canned prediction; ``changes`` update the card.
    """
    assert like.serving_graph is not None
    pipeline = registry.read_artifact(like, "pipeline")
    info = like.serving_graph
    if canned is not None:
        info = info.model_copy(update={"canned": info.canned.model_copy(update={"outputs": canned})})
    serving = like.artifacts["serving"].model_copy(update={"sha256": sha256_hex(graph), "bytes": len(graph)})

    def build(version: int) -> ModelCard:
        return like.model_copy(
            update={
                "version": version,
                "artifacts": {**like.artifacts, "serving": serving},
                "serving_graph": info,
                **changes,
            }
        )

    return registry.register(like.name, {"model.onnx": graph, "model.skops": pipeline}, build)
