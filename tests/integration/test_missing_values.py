"""Real data with holes in it (`scripts/make_missing_datasets.py`): trained with every estimator kind,
served from the ONNX graph in all three request forms with null for what was missing, outcomes
recorded, and the missing share watched by drift-check."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np
import pytest

from functions.adapters.datasets import S3DatasetStore
from functions.adapters.registry import S3ModelRegistry
from functions.domain.card import EstimatorSpec, ModelCard, TrainingSpec
from functions.domain.dataset import is_missing
from functions.domain.drift import evaluate_drift
from functions.domain.openapi import openapi_document
from functions.services.training import train_and_register
from tests.conftest import DATA
from tests.events import load_event, response_json, with_body

CASES = {
    "diabetes": ("diabetes_missing.csv", "progression", ["sex"], "regression"),
    "breast-cancer": ("breast_cancer_missing.csv", "target", [], "binary_classification"),
}
KINDS = {
    "regression": ["ridge", "linear_regression", "random_forest", "hist_gradient_boosting"],
    "binary_classification": ["logistic_regression", "random_forest", "hist_gradient_boosting"],
}
PARAMS = {"random_forest": {"n_estimators": 20}}


def request_rows(file: str, target: str, categorical: list[str], n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows with a missing cell as JSON would send them: null for a number or a category."""
    with (DATA / file).open() as f:
        records = [r for r in csv.DictReader(f) if any(is_missing(v) for v in r.values())]
    return [
        {k: None if is_missing(v) else (v if k in categorical else float(v)) for k, v in r.items() if k != target}
        for r in islice(records, n)
    ]


def train(registry: S3ModelRegistry, datasets: S3DatasetStore, name: str, kind: str) -> ModelCard:
    file, target, categorical, task = CASES[name]
    uri = datasets.upload(file, (DATA / file).read_bytes())
    spec = TrainingSpec(
        task=task,  # type: ignore[arg-type]
        target=target,
        categorical=categorical,
        estimator=EstimatorSpec(kind=kind, params=PARAMS.get(kind, {})),  # type: ignore[arg-type]
    )
    return train_and_register(registry, datasets, model_name=name, dataset_uri=uri, spec=spec)


@pytest.mark.parametrize(
    ("name", "kind"), [(name, kind) for name, (_, _, _, task) in CASES.items() for kind in KINDS[task]]
)
def test_missing_values_are_imputed_in_the_graph_and_null_is_served_for_what_was_missing(
    registry: S3ModelRegistry,
    datasets: S3DatasetStore,
    predict_function: Callable[..., Any],
    outcome_function: Callable[..., Any],
    lambda_context: Any,
    *,
    name: str,
    kind: str,
) -> None:
    card = train(registry, datasets, name, kind)
    file, target, categorical, task = CASES[name]
    nullable = {f.name for f in card.feature_schema.features if f.nullable}
    expected = {"bmi", "bp", "s5", "sex"} if name == "diabetes" else {"mean_radius", "mean_texture", "worst_area"}
    assert nullable == expected
    assert card.serving_graph is not None and card.serving_graph.fidelity.max_scaled_difference <= 1e-6

    function = predict_function(model_name=name)
    rows = request_rows(file, target, categorical, 6)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    answers = []
    for body in ({"rows": rows}, {"columns": columns}, {"features": rows[0]}):
        response = function.handle(with_body("predict_batch", body), lambda_context)
        assert response["statusCode"] == 200, response["body"]
        answers.append(response_json(response))
    by_rows, by_columns, single = answers
    assert by_rows["predictions"] == by_columns["predictions"]
    assert single["predictions"] == by_rows["predictions"][:1]
    assert all(math.isfinite(p) for p in by_rows["predictions"] if isinstance(p, float))

    complete = next(f.name for f in card.feature_schema.features if not f.nullable)
    response = function.handle(with_body("predict_batch", {"features": {**rows[0], complete: None}}), lambda_context)
    assert response["statusCode"] == 422
    assert response_json(response)["errors"] == [{"field": complete, "reason": "must be a number, got null"}]

    summary = response_json(function.handle(load_event("model"), lambda_context))
    assert {f["name"] for f in summary["features"] if f["nullable"]} == nullable

    # Ground truth for the rows answered with nulls in them is recorded like any other.
    truth = 1 if task != "regression" else 150.0
    outcomes = {"outcomes": [{"request_id": rid, "actual": truth} for rid in by_rows["request_ids"]]}
    recorded = outcome_function(model_name=name).handle(with_body("log_outcome", outcomes), lambda_context)
    assert recorded["statusCode"] == 200 and response_json(recorded)["accepted"] == len(rows)


def test_the_contract_accepts_null_only_for_nullable_features(
    registry: S3ModelRegistry, datasets: S3DatasetStore
) -> None:
    card = train(registry, datasets, "diabetes", "ridge")
    row = openapi_document(card, max_rows=10)["components"]["schemas"]["Row"]["properties"]
    assert row["bmi"]["type"] == ["number", "null"] and row["age"]["type"] == "number"
    assert row["sex"]["enum"] == ["missing", "sex_1", "sex_2", None]


def test_a_jump_in_the_missing_share_is_drift(registry: S3ModelRegistry, datasets: S3DatasetStore) -> None:
    card = train(registry, datasets, "breast-cancer", "logistic_regression")
    baseline = card.baseline
    assert 0.1 < baseline.numeric["mean_radius"].missing < 0.16
    rng = np.random.default_rng(3)
    names = card.feature_schema.names
    reference = {n: np.asarray(baseline.reference_sample[n], dtype=np.float64) for n in names}
    live = {n: rng.choice(reference[n], size=2000) for n in names}
    calm = evaluate_drift(baseline, live, None, card.task, 2000)
    live["mean_radius"] = np.where(rng.random(2000) < 0.6, np.nan, live["mean_radius"])
    shifted = evaluate_drift(baseline, live, None, card.task, 2000)

    assert "mean_radius" not in calm.drifted
    assert "mean_radius" in shifted.drifted
    feature = next(f for f in shifted.features if f.name == "mean_radius")
    assert feature.missing_share > 0.55 and feature.baseline_missing_share == baseline.numeric["mean_radius"].missing
