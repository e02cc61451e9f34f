"""The serving graph: every offered estimator kind converts faithfully, and the check catches a graph that does not."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType

from functions.domain.card import CLASSIFICATION_TASKS, EstimatorSpec
from functions.domain.estimators import ESTIMATOR_KINDS, kinds_for
from functions.domain.graph import TOLERANCE, check_fidelity, edge_rows, export_serving_graph
from functions.domain.inference import ServingGraph, load_serving_graph
from functions.domain.packaging import package_model, reference_columns
from functions.domain.training import train
from functions.errors import GraphFidelityError
from tests.conftest import TRAINABLE, read_dataset

CASES = [(name, kind) for name, t in TRAINABLE.items() for kind in kinds_for(t.spec.task in CLASSIFICATION_TASKS)]


def test_every_kind_is_offered_for_some_shipped_data_set():
    assert {kind for _, kind in CASES} == set(ESTIMATOR_KINDS)


@pytest.mark.parametrize(("dataset", "kind"), CASES)
def test_every_estimator_kind_converts_within_the_tolerance(dataset: str, kind: str):
    t = TRAINABLE[dataset]
    trained = train(read_dataset(dataset), t.spec.model_copy(update={"estimator": EstimatorSpec(kind=kind)}))

    packaged = package_model(trained, t.spec.task)

    fidelity = packaged.serving_graph.fidelity
    assert fidelity.max_scaled_difference <= TOLERANCE
    assert fidelity.label_mismatches == 0
    assert set(fidelity.rows) == {"validation", "reference", "edge"}
    assert fidelity.rows["validation"] == trained.validation_rows
    versions = packaged.serving_graph.versions
    assert {"skl2onnx", "onnx", "onnxruntime"} <= set(versions)
    assert packaged.serving_graph.opsets["ai.onnx"] >= 18


def test_edge_rows_put_each_feature_at_its_bounds_and_each_category_in_turn(trained):
    schema = trained["diabetes"].schema
    base = {
        f.name: reference_columns(trained["diabetes"].baseline.reference_sample, schema)[f.name][0]
        for f in schema.features
    }

    rows = edge_rows(schema, base)

    numeric = [f for f in schema.features if f.kind == "numeric"]
    sex = next(f for f in schema.features if f.kind == "categorical")
    assert len(rows["age"]) == 2 * len(numeric) + len(sex.categories or ())
    assert rows["age"][0] == numeric[0].minimum and rows["age"][1] == numeric[0].maximum
    assert sorted(set(rows["sex"].tolist())) == sorted(sex.categories or ())


def naive_forest_graph(pipeline: Any, schema: Any) -> ServingGraph:
    """The forest exactly as skl2onnx converts it with float64 inputs (its tree operator computes in float32)."""
    model = to_onnx(
        pipeline,
        initial_types=[("X", DoubleTensorType([None, len(schema.features)]))],
        target_opset={"": 18, "ai.onnx.ml": 3},
        options={id(pipeline.steps[-1][1]): {"zipmap": False}},
    )
    return ServingGraph(model.SerializeToString(), schema, "probabilities")


def test_the_check_catches_the_converters_float32_forest():
    t = TRAINABLE["breast_cancer"]
    trained = train(
        read_dataset("breast_cancer"), t.spec.model_copy(update={"estimator": EstimatorSpec(kind="random_forest")})
    )
    graph = naive_forest_graph(trained.model, trained.schema)
    rows = {"validation": {n: trained.validation.columns[n] for n in trained.schema.names}}

    with pytest.raises(GraphFidelityError) as exc:
        check_fidelity(trained.model, graph, trained.schema, trained.classes, rows)

    assert "worst rows: validation row" in exc.value.message
    assert "allowed 1e-06" in exc.value.message


def test_a_graph_of_another_model_is_refused_naming_the_worst_rows(trained):
    lr = trained["breast_cancer"]
    other = train(read_dataset("breast_cancer"), TRAINABLE["breast_cancer"].spec.model_copy(update={"random_state": 7}))
    graph_bytes, info = export_serving_graph(
        other.model,
        other.schema,
        "binary_classification",
        other.classes,
        {"reference": reference_columns(other.baseline.reference_sample, other.schema)},
    )
    graph = ServingGraph(graph_bytes, lr.schema, info.output)

    with pytest.raises(GraphFidelityError, match=r"worst rows: reference row \d+"):
        check_fidelity(
            lr.model,
            graph,
            lr.schema,
            lr.classes,
            {"reference": reference_columns(lr.baseline.reference_sample, lr.schema)},
        )


def test_the_canned_prediction_is_checked_at_load(make_card):
    card, files = make_card()
    assert card.serving_graph is not None

    loaded = load_serving_graph(files["model.onnx"], card)  # answers what registration recorded

    columns = {
        n: np.asarray([card.serving_graph.canned.features[n]], dtype=np.float64) for n in card.feature_schema.names
    }
    np.testing.assert_allclose(loaded.run(None, columns).ravel(), card.serving_graph.canned.outputs, rtol=0, atol=1e-12)
