"""From a fitted scikit-learn pipeline to a checked ONNX serving graph (skl2onnx; training side only).

The graph is what predict serves, so it is measured against the pipeline before a version exists:
on the validation rows, the reference sample and edge rows (each numeric feature at its training
minimum and maximum, each known category in turn), every probability or value ``y`` must satisfy
``|graph - pipeline| <= TOLERANCE * max(1, |y|)``, and a classifier must give the pipeline's label on
every row whose top two probabilities are more than ``TIE_MARGIN`` apart.

Tree ensembles are not served as skl2onnx converts them. Its tree operators compute in float32:
thresholds, leaf values and the sum over trees, which put a 100-tree forest's regression values up
to 1.1e-6 relative from scikit-learn's on the shipped diabetes data, and converted with float64
thresholds a forest took the other branch near a threshold (probabilities off by up to 0.07), because
scikit-learn's trees compare ``float32(x)`` while HistGradientBoosting compares ``x`` itself.
``graph_trees.exact_trees`` therefore replaces the converted tree operator: one ``TreeEnsembleRegressor`` whose
tree ``t`` answers the index of the leaf a row reaches (an integer, exact in float32), compared on
the same values scikit-learn compares (``float32(x)`` for forests, ``x`` for HistGradientBoosting)
with scikit-learn's float64 thresholds; then a ``Gather`` of the float64 leaf values and the
ensemble's own combination (mean, or sum plus baseline and the link function), all in float64.
skl2onnx still converts the preprocessing (scaling, one-hot encoding) in float64. Its
HistGradientBoosting converter passes ``nodes_missing_value_tracks_true`` as numpy booleans, which
ONNX attributes refuse; ``_missing_flags_as_ints`` casts them while the conversion runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime
import skl2onnx
from onnx import helper, numpy_helper
from skl2onnx import to_onnx
from skl2onnx.common import tree_ensemble
from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

from functions.domain.card import (
    CLASSIFICATION_TASKS,
    CannedPrediction,
    FidelityWorst,
    GraphFidelity,
    ServingGraphInfo,
    Task,
)
from functions.domain.estimators import ESTIMATORS
from functions.domain.graph_trees import exact_trees, is_tree_ensemble
from functions.domain.inference import PROBABILITIES, ServingGraph, graph_inputs, outputs_of
from functions.domain.schema import FeatureSchema
from functions.errors import GraphFidelityError

TOLERANCE = 1e-6  # |graph - pipeline| <= TOLERANCE * max(1, |pipeline|)
TIE_MARGIN = 2e-6  # labels must agree where the top two probabilities differ by more than this
TARGET_OPSET = {"": 18, "ai.onnx.ml": 3}
REGRESSION_OUTPUT = "variable"
WORST_REPORTED = 5
CONVERTER = "skl2onnx"


def converter_versions() -> dict[str, str]:
    """The versions that made and checked a graph (recorded in the card)."""
    return {"skl2onnx": skl2onnx.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


@contextlib.contextmanager
def _missing_flags_as_ints() -> Iterator[None]:
    """Make skl2onnx's tree builder pass ``nodes_missing_value_tracks_true`` as ints, not numpy bools."""
    original = tree_ensemble.add_node

    def add_node(*args: Any, **kwargs: Any) -> Any:
        if "nodes_missing_value_tracks_true" in kwargs:
            kwargs["nodes_missing_value_tracks_true"] = int(bool(kwargs["nodes_missing_value_tracks_true"]))
        return original(*args, **kwargs)

    tree_ensemble.add_node = add_node
    try:
        yield
    finally:
        tree_ensemble.add_node = original


def _estimator_kind(pipeline: Any) -> str:
    name = type(pipeline.steps[-1][1]).__name__
    for kind, spec in ESTIMATORS.items():
        if name in {path.rpartition(":")[2] for path in (spec.classifier, spec.regressor) if path}:
            return kind
    raise GraphFidelityError(f"no serving-graph conversion is known for {name}")


def _initial_types(schema: FeatureSchema) -> list[tuple[str, Any]]:
    if schema.all_numeric:
        return [("X", DoubleTensorType([None, len(schema.features)]))]
    return [
        (name, DoubleTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for name, f in zip(graph_inputs(schema), schema.features, strict=True)
    ]


def _sklearn_imputers(pipeline: Any) -> list[Any]:
    """The fitted SimpleImputers of ``pipeline``, in the order skl2onnx converts them."""
    found: list[Any] = []

    def walk(step: Any) -> None:
        if type(step).__name__ == "SimpleImputer":
            found.append(step)
        for _, child in getattr(step, "steps", []):
            walk(child)
        for _, child, _columns in getattr(step, "transformers_", []):
            walk(child)

    walk(pipeline)
    return found


def _imputers_in_double(model: onnx.ModelProto, pipeline: Any) -> None:
    """Replace each ``ai.onnx.ml`` Imputer (a SimpleImputer) with ``Where(IsNaN(x), fill, x)``.

    onnxruntime implements Imputer for float32 only, and the graph computes in float64 (the
    precision the pipeline has); the two standard operators do the same in any precision. The
    fill values are the imputer's own float64 statistics: the float32 copies in the Imputer node
    can land on the other side of a tree's threshold (a median is often one).
    """
    graph = model.graph
    nodes = [(i, n) for i, n in enumerate(graph.node) if n.op_type == "Imputer"]
    imputers = _sklearn_imputers(pipeline)
    if len(imputers) != len(nodes):
        raise GraphFidelityError(
            f"{len(nodes)} Imputer nodes in the graph for {len(imputers)} imputers in the pipeline"
        )
    for (index, node), imputer in reversed(list(zip(nodes, imputers, strict=True))):
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        replaced = attributes.get("replaced_value_float", float("nan"))
        if not np.isnan(replaced):
            raise GraphFidelityError(f"an imputer replacing {replaced!r} (not NaN) has no serving-graph conversion")
        fill = np.asarray(imputer.statistics_, dtype=np.float64)
        name = node.name or f"imputer{index}"
        mask, constant = f"{name}_isnan", f"{name}_fill"
        graph.initializer.append(numpy_helper.from_array(fill, constant))
        replacement = [
            helper.make_node("IsNaN", [node.input[0]], [mask], name=f"{name}_IsNaN"),
            helper.make_node("Where", [mask, constant, node.input[0]], [node.output[0]], name=f"{name}_Where"),
        ]
        del graph.node[index]
        for offset, new in enumerate(replacement):
            graph.node.insert(index + offset, new)


def convert_pipeline(pipeline: Any, schema: FeatureSchema, task: Task) -> tuple[bytes, str]:
    """The pipeline as serialised ONNX with the schema's inputs (see ``inference.graph_inputs``) and its output name.

    Raises:
        GraphFidelityError: the converter cannot convert this pipeline.
    """
    kind = _estimator_kind(pipeline)
    estimator = pipeline.steps[-1][1]
    options = {id(pipeline.steps[-1][1]): {"zipmap": False}} if task in CLASSIFICATION_TASKS else None
    try:
        with _missing_flags_as_ints():
            model = to_onnx(
                pipeline,
                initial_types=_initial_types(schema),
                target_opset=TARGET_OPSET,
                options=options,
            )
    except Exception as exc:  # noqa: BLE001 - the converter raises whatever its parsers raise
        raise GraphFidelityError(
            f"skl2onnx cannot convert this {kind} pipeline to a serving graph: {type(exc).__name__}: {exc}"
        ) from exc
    output = PROBABILITIES if task in CLASSIFICATION_TASKS else REGRESSION_OUTPUT
    _imputers_in_double(model, pipeline)
    if is_tree_ensemble(estimator):
        model = exact_trees(model, estimator, output)
    outputs = [o.name for o in model.graph.output]
    if output not in outputs:
        raise GraphFidelityError(f"the converted graph has outputs {outputs}, not {output!r}")
    onnx.checker.check_model(model)
    return model.SerializeToString(), output


def edge_rows(schema: FeatureSchema, base: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Rows that put each numeric feature at its training minimum and maximum and each category in turn.

    Every other feature keeps its value in ``base`` (a reference row).
    """
    rows: list[dict[str, Any]] = []
    for f in schema.features:
        if f.kind == "numeric":
            for value in (f.minimum, f.maximum):
                if value is not None:
                    rows.append({**base, f.name: float(value)})
        else:
            rows.extend({**base, f.name: category} for category in f.categories or ())
    if not rows:
        rows.append(dict(base))
    return {
        f.name: np.asarray([r[f.name] for r in rows], dtype=np.float64 if f.kind == "numeric" else object)
        for f in schema.features
    }


def _matrix(columns: Mapping[str, np.ndarray], schema: FeatureSchema) -> np.ndarray:
    """The pipeline's input for typed columns: float64 when all numeric, else an object matrix."""
    if schema.all_numeric:
        return np.column_stack([np.asarray(columns[n], dtype=np.float64) for n in schema.names])
    n = len(next(iter(columns.values())))
    out = np.empty((n, len(schema.features)), dtype=object)
    for j, name in enumerate(schema.names):
        out[:, j] = columns[name]
    return out


@dataclass
class _Comparison:
    """The differences found on one row set."""

    name: str
    expected: np.ndarray  # (n, k) probabilities or (n, 1) values
    got: np.ndarray

    def scaled(self) -> np.ndarray:
        return np.abs(self.got - self.expected) / np.maximum(1.0, np.abs(self.expected))


def _as_2d(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    return values.reshape(len(values), -1)


def _label_checks(expected: np.ndarray) -> tuple[np.ndarray, int]:
    """Rows whose label must agree (top two probabilities more than TIE_MARGIN apart), and the tie count."""
    if expected.shape[1] < 2:
        return np.ones(len(expected), dtype=bool), 0
    top_two = np.sort(expected, axis=1)[:, -2:]
    decided = (top_two[:, 1] - top_two[:, 0]) > TIE_MARGIN
    return decided, int((~decided).sum())


def check_fidelity(
    pipeline: Any,
    graph: ServingGraph,
    schema: FeatureSchema,
    classes: list[Any] | None,
    row_sets: Mapping[str, Mapping[str, np.ndarray]],
) -> GraphFidelity:
    """Compare the graph with the pipeline on every row set.

    Raises:
        GraphFidelityError: a difference beyond the tolerance, or a different label on a decided row;
            the message names the worst rows.
    """
    classification = classes is not None
    comparisons = []
    for name, columns in row_sets.items():
        if not len(next(iter(columns.values()))):
            continue
        X = _matrix(columns, schema)
        expected = pipeline.predict_proba(X) if classification else pipeline.predict(X)
        comparisons.append(_Comparison(name, _as_2d(expected), _as_2d(graph.run(None, columns))))
    worst: list[tuple[float, FidelityWorst]] = []
    max_abs = max_scaled = 0.0
    mismatches: list[str] = []
    ties = 0
    for c in comparisons:
        if c.got.shape != c.expected.shape:
            raise GraphFidelityError(
                f"the serving graph answers shape {c.got.shape} on the {c.name} rows, the pipeline {c.expected.shape}"
            )
        if not np.isfinite(c.got).all():
            row = int(np.argwhere(~np.isfinite(c.got))[0][0])
            raise GraphFidelityError(f"the serving graph answers a non-finite value on {c.name} row {row}")
        scaled = c.scaled()
        max_abs = max(max_abs, float(np.abs(c.got - c.expected).max()))
        max_scaled = max(max_scaled, float(scaled.max()))
        for flat in np.argsort(scaled, axis=None)[::-1][:WORST_REPORTED]:
            row, col = np.unravel_index(flat, scaled.shape)
            worst.append(
                (
                    float(scaled[row, col]),
                    FidelityWorst(
                        rows=c.name,
                        row=int(row),
                        output=str(classes[col]) if classification and classes else "value",
                        pipeline=float(c.expected[row, col]),
                        graph=float(c.got[row, col]),
                        difference=float(c.got[row, col] - c.expected[row, col]),
                    ),
                )
            )
        if classification:
            decided, near = _label_checks(c.expected)
            ties += near
            wrong = decided & (c.expected.argmax(axis=1) != c.got.argmax(axis=1))
            mismatches.extend(f"{c.name} row {int(r)}" for r in np.flatnonzero(wrong)[:WORST_REPORTED])
    worst.sort(key=lambda pair: pair[0], reverse=True)
    top = [w for _, w in worst[:WORST_REPORTED]]
    if max_scaled > TOLERANCE or mismatches:
        details = "; ".join(
            f"{w.rows} row {w.row} {w.output}: pipeline {w.pipeline:.17g}, graph {w.graph:.17g}"
            f" (difference {w.difference:.3g})"
            for w in top[:3]
        )
        labels = f"; different labels on {', '.join(mismatches)}" if mismatches else ""
        raise GraphFidelityError(
            f"the ONNX serving graph does not reproduce the pipeline: worst scaled difference {max_scaled:.3g}"
            f" (allowed {TOLERANCE:g}); worst rows: {details}{labels}"
        )
    return GraphFidelity(
        rows={c.name: len(c.expected) for c in comparisons},
        tolerance=TOLERANCE,
        max_abs_difference=max_abs,
        max_scaled_difference=max_scaled,
        label_mismatches=0,
        near_ties=ties,
        worst=top,
    )


def export_serving_graph(
    pipeline: Any,
    schema: FeatureSchema,
    task: Task,
    classes: list[Any] | None,
    row_sets: Mapping[str, Mapping[str, np.ndarray]],
) -> tuple[bytes, ServingGraphInfo]:
    """Convert ``pipeline``, check it on ``row_sets`` (must include ``reference``) plus edge rows.

    Returns:
        The serialised graph and what the card records about it (versions, opsets, fidelity, the canned
        prediction every load repeats).

    Raises:
        GraphFidelityError: the pipeline cannot be converted or the graph does not reproduce it.
    """
    graph_bytes, output = convert_pipeline(pipeline, schema, task)
    session = ServingGraph(graph_bytes, schema, output)
    reference = row_sets["reference"]
    if not len(next(iter(reference.values()))):
        raise GraphFidelityError("the reference sample is empty; there is no row to check the graph on")
    first = {f.name: _scalar(reference[f.name][0]) for f in schema.features}
    checked = {**row_sets, "edge": edge_rows(schema, first)}
    fidelity = check_fidelity(pipeline, session, schema, classes, checked)
    canned_columns = {name: np.asarray([value], dtype=reference[name].dtype) for name, value in first.items()}
    canned = CannedPrediction(features=first, outputs=outputs_of(session.run(None, canned_columns)))
    model = onnx.load_from_string(graph_bytes)
    info = ServingGraphInfo(
        converter=CONVERTER,
        versions=converter_versions(),
        opsets={(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        inputs="matrix" if schema.all_numeric else "per_feature",
        output=output,
        fidelity=fidelity,
        canned=canned,
    )
    return graph_bytes, info


def _scalar(value: Any) -> float | str:
    return value if isinstance(value, str) else float(value)
