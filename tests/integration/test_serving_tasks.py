"""Multiclass and regression models served end to end, categorical features included."""

from __future__ import annotations

import csv
import math
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from tests.events import response_json, with_body

DATA = Path(__file__).resolve().parents[2] / "data"


def first_rows(file: str, target: str, n: int) -> tuple[list[dict[str, Any]], list[str]]:
    """The first ``n`` rows of a CSV as request rows (numbers as floats, text kept) and their targets."""
    with (DATA / file).open() as f:
        records = list(islice(csv.DictReader(f), n))
    rows = [{k: (v if k == "sex" else float(v)) for k, v in r.items() if k != target} for r in records]
    return rows, [r[target] for r in records]


def predict(function: Any, body: dict[str, Any], context: Any) -> tuple[int, dict[str, Any]]:
    response = function.handle(with_body("predict_batch", body), context)
    return response["statusCode"], response_json(response)


def test_multiclass_model_answers_labels_and_probabilities(train_model, predict_function, lambda_context):
    card = train_model("iris")
    rows, species = first_rows("iris.csv", "species", 3)

    status, body = predict(predict_function(model_name="iris"), {"rows": rows}, lambda_context)

    assert status == 200
    assert body["model_name"] == "iris" and body["model_version"] == card.version == 1
    assert body["classes"] == ["setosa", "versicolor", "virginica"]
    assert body["predictions"] == species == ["setosa"] * 3
    for p in body["probabilities"]:
        assert len(p) == 3 and sum(p) == pytest.approx(1.0)


def test_multiclass_model_validates_against_its_own_schema(train_model, predict_function, lambda_context):
    train_model("iris")
    rows, _ = first_rows("iris.csv", "species", 1)

    status, body = predict(
        predict_function(model_name="iris"), {"features": {**rows[0], "petal_width_cm": "wide"}}, lambda_context
    )

    assert status == 422
    assert body["errors"] == [{"field": "petal_width_cm", "reason": "must be a number, got a string"}]


def test_regression_model_with_a_categorical_feature(train_model, predict_function, lambda_context):
    card = train_model("diabetes")
    rows, targets = first_rows("diabetes.csv", "progression", 5)
    assert {r["sex"] for r in rows} == {"sex_1", "sex_2"}

    status, body = predict(predict_function(model_name="diabetes"), {"rows": rows}, lambda_context)

    assert status == 200
    assert body["model_version"] == card.version
    assert "probabilities" not in body and "classes" not in body
    assert len(body["predictions"]) == 5
    assert all(isinstance(p, float) and 25.0 <= p <= 346.0 for p in body["predictions"])
    # a fair model: the first rows' errors are within a few RMSE of the truth
    errors = [abs(p - float(t)) for p, t in zip(body["predictions"], targets, strict=True)]
    assert max(errors) < 3 * card.metrics["rmse"]


def test_regression_columnar_form_matches_rows(train_model, predict_function, lambda_context):
    train_model("diabetes")
    rows, _ = first_rows("diabetes.csv", "progression", 4)
    columns = {k: [r[k] for r in rows] for k in rows[0]}
    function = predict_function(model_name="diabetes")

    _, by_rows = predict(function, {"rows": rows}, lambda_context)
    _, by_columns = predict(function, {"columns": columns}, lambda_context)

    assert by_columns["predictions"] == pytest.approx(by_rows["predictions"])


@pytest.mark.parametrize(
    ("sex", "reason"),
    [
        ("sex_3", "unknown category 'sex_3'; expected one of: sex_1, sex_2"),
        ("SEX_1", "unknown category 'SEX_1'; expected one of: sex_1, sex_2"),
        (1, "must be a string category, got int"),
        (1.0, "must be a string category, got float"),
        (None, "must be a string category, got null"),
        (True, "must be a string category, got a boolean"),
    ],
)
def test_a_bad_category_is_422(train_model, predict_function, lambda_context, sex: Any, reason: str):
    train_model("diabetes")
    rows, _ = first_rows("diabetes.csv", "progression", 2)
    rows[1]["sex"] = sex

    status, body = predict(predict_function(model_name="diabetes"), {"rows": rows}, lambda_context)

    assert status == 422
    assert body["errors"] == [{"field": "sex", "reason": reason, "row": 1}]


@pytest.mark.parametrize(
    ("dataset", "file", "target", "feature", "expected"),
    [
        # The logistic function saturates: a finite answer, flagged as far outside the training range.
        ("breast_cancer", "breast_cancer.csv", "target", "mean_smoothness", 200),
        # A linear value overflows to infinity: the model cannot answer, and the input is the cause.
        ("diabetes", "diabetes.csv", "progression", "bmi", 422),
    ],
)
def test_an_extreme_but_finite_value_is_flagged_or_refused_as_the_clients_fault(
    train_model, predict_function, lambda_context, *, dataset: str, file: str, target: str, feature: str, expected: int
):
    card = train_model(dataset)
    rows, _ = first_rows(file, target, 1)
    rows[0][feature] = 1e308

    status, body = predict(predict_function(model_name=card.name), {"rows": rows}, lambda_context)

    assert status == expected
    if expected == 422:
        assert [(e["field"], e.get("row")) for e in body["errors"]] == [(feature, 0)]
    else:
        assert [(o["field"], o["row"], o["value"]) for o in body["out_of_range"]] == [(feature, 0, 1e308)]
        assert all(math.isfinite(p) for p in body["probabilities"][0])
