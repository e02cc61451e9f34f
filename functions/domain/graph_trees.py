"""Tree ensembles in the serving graph, computed as scikit-learn computes them (see ``graph.py``).

``exact_trees`` replaces the tree operator skl2onnx wrote with:

1. one ``TreeEnsembleRegressor`` (ai.onnx.ml opset 3, float64 inputs and float64 thresholds as
   tensors) whose tree ``t`` writes, as target ``t``, the index of the leaf the row reaches: an
   integer, exact in the operator's float32 output for fewer than 2**24 leaves;
2. ``Cast`` to int64 and ``Gather`` from the float64 table of every leaf's values;
3. the ensemble's combination in float64: the mean over trees (random forests), or the sum plus the
   baseline then the inverse link (HistGradientBoosting: identity, logistic, softmax).

Random forests compare ``float32(x)`` with float64 thresholds (scikit-learn casts ``X`` to float32
before the trees), so their input goes through ``Cast`` to float32 and back, which changes no value
the comparison sees. HistGradientBoosting compares the float64 value itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from functions.errors import GraphFidelityError

TREE_OPERATORS = frozenset({"TreeEnsembleRegressor", "TreeEnsembleClassifier"})
ML_DOMAIN = "ai.onnx.ml"
MAX_LEAVES = 2**24  # leaf indices travel through a float32 output


@dataclass
class _Tree:
    """One tree as flat arrays (node ``i``; children -1 at leaves) and the values of its nodes."""

    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    values: np.ndarray  # (nodes, outputs) float64; only leaves are read

    @property
    def leaves(self) -> np.ndarray:
        return np.flatnonzero(self.left < 0)


@dataclass
class _Ensemble:
    trees: list[_Tree]
    outputs: int
    cast_to_float32: bool
    combine: str  # "mean" | "sum"
    baseline: np.ndarray | None = None
    link: str = "identity"  # "identity" | "logistic" | "softmax"


def is_tree_ensemble(estimator: Any) -> bool:
    return type(estimator).__name__ in {
        "RandomForestClassifier",
        "RandomForestRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    }


def _forest(estimator: Any) -> _Ensemble:
    trees = []
    for member in estimator.estimators_:
        tree = member.tree_
        if tree.n_outputs != 1:
            raise GraphFidelityError("multi-output forests have no serving graph")
        values = np.asarray(tree.value[:, 0, :], dtype=np.float64)
        if hasattr(estimator, "classes_"):
            totals = values.sum(axis=1, keepdims=True)
            values = np.divide(values, totals, out=np.zeros_like(values), where=totals > 0)
        trees.append(
            _Tree(
                left=np.asarray(tree.children_left),
                right=np.asarray(tree.children_right),
                feature=np.asarray(tree.feature),
                threshold=np.asarray(tree.threshold, dtype=np.float64),
                missing_left=np.asarray(getattr(tree, "missing_go_to_left", np.zeros(tree.node_count)), dtype=bool),
                values=values,
            )
        )
    return _Ensemble(trees=trees, outputs=trees[0].values.shape[1], cast_to_float32=True, combine="mean")


def _boosting(estimator: Any) -> _Ensemble:
    categorical = getattr(estimator, "is_categorical_", None)
    if categorical is not None and np.any(categorical):
        raise GraphFidelityError("HistGradientBoosting with native categorical features has no serving graph")
    link = type(estimator._loss.link).__name__
    per_iteration = len(estimator._predictors[0])
    if link == "IdentityLink":
        kind = "identity"
    elif link == "LogitLink" and per_iteration == 1:
        kind = "logistic"
    elif link == "MultinomialLogit":
        kind = "softmax"
    else:
        raise GraphFidelityError(f"HistGradientBoosting with the {link} link has no serving graph")
    trees = []
    for iteration in estimator._predictors:
        for output, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            values = np.zeros((len(nodes), per_iteration), dtype=np.float64)
            values[:, output] = nodes["value"]
            trees.append(
                _Tree(
                    left=np.where(leaf, -1, nodes["left"].astype(np.int64)),
                    right=np.where(leaf, -1, nodes["right"].astype(np.int64)),
                    feature=nodes["feature_idx"].astype(np.int64),
                    threshold=nodes["num_threshold"].astype(np.float64),
                    missing_left=nodes["missing_go_to_left"].astype(bool),
                    values=values,
                )
            )
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(1, per_iteration)
    return _Ensemble(
        trees=trees, outputs=per_iteration, cast_to_float32=False, combine="sum", baseline=baseline, link=kind
    )


def _ensemble(estimator: Any) -> _Ensemble:
    name = type(estimator).__name__
    return _forest(estimator) if name.startswith("RandomForest") else _boosting(estimator)


def _slot_operator(ensemble: _Ensemble, source: str, target: str) -> tuple[onnx.NodeProto, np.ndarray]:
    """The ``TreeEnsembleRegressor`` that answers leaf indices, and the table of leaf values."""
    tree_ids, node_ids, features, modes, thresholds = [], [], [], [], []
    true_ids, false_ids, missing = [], [], []
    target_ids, target_nodes, target_trees, target_weights = [], [], [], []
    table: list[np.ndarray] = []
    for t, tree in enumerate(ensemble.trees):
        for i in range(len(tree.left)):
            leaf = tree.left[i] < 0
            tree_ids.append(t)
            node_ids.append(i)
            features.append(0 if leaf else int(tree.feature[i]))
            modes.append("LEAF" if leaf else "BRANCH_LEQ")
            thresholds.append(0.0 if leaf else float(tree.threshold[i]))
            true_ids.append(0 if leaf else int(tree.left[i]))
            false_ids.append(0 if leaf else int(tree.right[i]))
            missing.append(0 if leaf else int(tree.missing_left[i]))
            if leaf:
                target_ids.append(t)
                target_nodes.append(i)
                target_trees.append(t)
                target_weights.append(float(len(table)))
                table.append(tree.values[i])
    if len(table) >= MAX_LEAVES:
        raise GraphFidelityError(f"the ensemble has {len(table)} leaves; the serving graph takes fewer than 2**24")
    node = helper.make_node(
        "TreeEnsembleRegressor",
        [source],
        [target],
        domain=ML_DOMAIN,
        name="leaf_indices",
        n_targets=len(ensemble.trees),
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=tree_ids,
        nodes_nodeids=node_ids,
        nodes_featureids=features,
        nodes_modes=modes,
        nodes_values_as_tensor=numpy_helper.from_array(np.asarray(thresholds, dtype=np.float64), "thresholds"),
        nodes_truenodeids=true_ids,
        nodes_falsenodeids=false_ids,
        nodes_missing_value_tracks_true=missing,
        target_ids=target_ids,
        target_nodeids=target_nodes,
        target_treeids=target_trees,
        target_weights=target_weights,
    )
    return node, np.asarray(table, dtype=np.float64)


def _downstream(graph: onnx.GraphProto, start: onnx.NodeProto) -> set[int]:
    """Indices of ``start`` and every node that consumes what it produces, transitively."""
    produced = set(start.output)
    found = {next(i for i, n in enumerate(graph.node) if n is start)}
    changed = True
    while changed:
        changed = False
        for i, node in enumerate(graph.node):
            if i not in found and produced & set(node.input):
                found.add(i)
                produced |= set(node.output)
                changed = True
    return found


def exact_trees(model: onnx.ModelProto, estimator: Any, output: str) -> onnx.ModelProto:
    """Replace the converted tree operator (and what follows it) by the exact computation; one output."""
    graph = model.graph
    trees = [n for n in graph.node if n.op_type in TREE_OPERATORS]
    if len(trees) != 1:
        raise GraphFidelityError(f"expected one tree operator in the converted graph, found {len(trees)}")
    source = trees[0].input[0]
    removed = _downstream(graph, trees[0])
    kept = [n for i, n in enumerate(graph.node) if i not in removed]
    ensemble = _ensemble(estimator)
    added: list[onnx.NodeProto] = []
    initializers: list[onnx.TensorProto] = []
    if ensemble.cast_to_float32:
        added.append(helper.make_node("Cast", [source], ["tree_input_float32"], to=TensorProto.FLOAT))
        added.append(helper.make_node("Cast", ["tree_input_float32"], ["tree_input"], to=TensorProto.DOUBLE))
        source = "tree_input"
    else:
        added.append(helper.make_node("Cast", [source], ["tree_input"], to=TensorProto.DOUBLE))
        source = "tree_input"
    slots, table = _slot_operator(ensemble, source, "leaf_index_float")
    added += [
        slots,
        helper.make_node("Cast", ["leaf_index_float"], ["leaf_index"], to=TensorProto.INT64),
        helper.make_node("Gather", ["leaf_values", "leaf_index"], ["tree_values"], axis=0),  # (n, trees, outputs)
    ]
    initializers += [
        numpy_helper.from_array(table, "leaf_values"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), "tree_axis"),
    ]
    if ensemble.combine == "mean":
        added.append(helper.make_node("ReduceMean", ["tree_values", "tree_axis"], [output], keepdims=0))
    else:
        assert ensemble.baseline is not None
        initializers.append(numpy_helper.from_array(ensemble.baseline, "baseline"))
        added.append(helper.make_node("ReduceSum", ["tree_values", "tree_axis"], ["raw_sum"], keepdims=0))
        raw = "raw_score" if ensemble.link != "identity" else output
        added.append(helper.make_node("Add", ["raw_sum", "baseline"], [raw]))
        if ensemble.link == "logistic":
            added.append(helper.make_node("Sigmoid", [raw], ["positive"]))
            initializers.append(numpy_helper.from_array(np.asarray([[1.0]], dtype=np.float64), "one"))
            added.append(helper.make_node("Sub", ["one", "positive"], ["negative"]))
            added.append(helper.make_node("Concat", ["negative", "positive"], [output], axis=1))
        elif ensemble.link == "softmax":
            added.append(helper.make_node("Softmax", [raw], [output], axis=1))
    del graph.node[:]
    graph.node.extend([*kept, *added])
    graph.initializer.extend(initializers)
    width = 2 if ensemble.link == "logistic" else ensemble.outputs
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(output, TensorProto.DOUBLE, [None, width]))
    for opset in model.opset_import:
        if opset.domain == ML_DOMAIN:
            opset.version = max(opset.version, 3)
    _prune_unused(graph)
    return model


def _prune_unused(graph: onnx.GraphProto) -> None:
    """Drop initializers no node reads any more (the converted tree operator's leftovers)."""
    used = {value for node in graph.node for value in node.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
