"""The OpenAPI document: the committed generic one matches the code; a model's names its features."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from functions.config import stage_config
from functions.domain.card import ModelCard
from functions.domain.openapi import openapi_document
from functions.domain.schema import FeatureSchema, FeatureSpec
from functions.local.cli import generic_openapi_text
from functions.local.gateway import FUNCTION_OF
from functions.routes import ROUTES

ROOT = Path(__file__).resolve().parents[2]


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": document["components"]})


def test_the_committed_generic_document_matches_the_code() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == generic_openapi_text(stage_config("local")), (
        "docs/openapi.json is stale: run `mlops openapi --out docs/openapi.json`"
    )
    document = json.loads(committed)
    assert document["openapi"] == "3.1.0"
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    assert {(r.method.lower(), r.path) for r in ROUTES} == {
        (method, path) for path, item in document["paths"].items() for method in item
    }
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert ("requestBody" in operation) == route.has_body
        assert operation["responses"]["500"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }
        if "503" in operation["responses"]:
            assert operation["responses"]["503"]["headers"]["Retry-After"]["required"] is True


def test_every_route_is_served_by_the_local_gateway_as_deployed() -> None:
    assert FUNCTION_OF == {(r.method, r.path): r.function for r in ROUTES}


def test_a_models_document_types_each_feature_and_annotates_ranges(minimal_card: Callable[..., ModelCard]) -> None:
    card = minimal_card(
        task="multiclass_classification",
        classes=["a", "b", "c"],
        feature_schema=FeatureSchema(
            features=(
                FeatureSpec(name="colour", kind="categorical", categories=("red", "blue")),
                FeatureSpec(name="size/cm", kind="numeric", minimum=0.0, maximum=3.0),
            )
        ),
    )
    document = openapi_document(card, max_rows=10)
    row = document["components"]["schemas"]["Row"]
    assert row["properties"]["colour"] == {"type": "string", "enum": ["red", "blue"]}
    size = row["properties"]["size/cm"]
    assert size["type"] == "number" and (size["x-training-minimum"], size["x-training-maximum"]) == (0.0, 3.0)
    assert "minimum" not in size and "maximum" not in size

    request = _validator(document, "PredictRequest")
    request.validate({"features": {"colour": "red", "size/cm": 99.0}})  # out of range is served, and flagged
    request.validate({"columns": {"colour": ["red", "blue"], "size/cm": [1, 2]}})
    for bad in (
        {"features": {"colour": "green", "size/cm": 1.0}},
        {"features": {"colour": "red"}},
        {"rows": []},
        {"rows": [{"colour": "red", "size/cm": 1}] * 11},
        {"features": {"colour": "red", "size/cm": 1}, "rows": []},
    ):
        assert not request.is_valid(bad), bad
    outcomes = _validator(document, "OutcomesRequest")
    outcomes.validate({"request_id": "abc-0", "actual": "b"})
    assert not outcomes.is_valid({"request_id": "abc-0", "actual": "z"})
    prediction = document["components"]["schemas"]["PredictResponse"]["properties"]["predictions"]
    assert prediction == {"type": "array", "items": {"enum": ["a", "b", "c"]}}


def test_a_regression_models_labels_are_numbers(minimal_card: Callable[..., ModelCard]) -> None:
    document = openapi_document(minimal_card(task="regression", classes=None), max_rows=5)
    assert document["components"]["schemas"]["Outcome"]["properties"]["actual"] == {"type": "number"}
