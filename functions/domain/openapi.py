"""The API's OpenAPI 3.1 contract, generic or for one serving model.

For a model, each feature is in the request schemas with its type (and categories); the training
range is an annotation (``x-training-minimum`` / ``x-training-maximum``), not ``minimum`` /
``maximum``: out-of-range values are served, and flagged in ``out_of_range``. Without a model
(the committed ``docs/openapi.json``), a row is any object of numbers and strings.

Errors have one body, the functions' own (``functions/errors.py``): ``code``, ``message``,
``errors`` (each ``field``, ``reason`` and, in a batch, ``row``) and ``request_id``.
"""

from __future__ import annotations

from typing import Any, get_args

from functions.domain.card import ModelCard, Task
from functions.domain.schema import FeatureSpec
from functions.errors import RETRY_AFTER_SECONDS
from functions.routes import ROUTES, Route

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
REF = "#/components/schemas/"
# The statuses each route answers besides 200, with what they mean.
ERROR_STATUSES: dict[str, dict[int, str]] = {
    "/predict": {
        400: "the body is not JSON",
        413: "the body is too large",
        415: "Content-Type is not JSON",
        422: "the body does not fit the model's features; each bad field is named",
        500: "a bug of ours (nothing internal is said)",
        503: "no model can be served yet",
    },
    "/model": {500: "a bug of ours", 503: "no model can be served yet"},
    "/health": {500: "a bug of ours"},
    "/openapi.json": {500: "a bug of ours", 503: "no model can be served yet"},
    "/outcomes": {
        400: "the body is not JSON",
        413: "the body is too large",
        415: "Content-Type is not JSON",
        422: "an outcome does not fit the model (unknown class, bad request id ...); each is named",
        500: "a bug of ours",
        503: "storage or the model card is unavailable; nothing was stored",
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF + name}


def _feature_value(spec: FeatureSpec) -> dict[str, Any]:
    if spec.kind == "categorical":
        if spec.nullable:
            return {"enum": [*(spec.categories or ()), None], "description": "null is the category 'missing'"}
        return {"type": "string", "enum": list(spec.categories or ())}
    if spec.nullable:
        value: dict[str, Any] = {"type": ["number", "null"], "description": "a finite number, or null (imputed)"}
    else:
        value = {"type": "number", "description": "a finite number"}
    if spec.minimum is not None:
        value["x-training-minimum"] = spec.minimum
    if spec.maximum is not None:
        value["x-training-maximum"] = spec.maximum
    return value


def _request_schemas(card: ModelCard | None, max_rows: int) -> dict[str, Any]:
    if card is None:
        row: dict[str, Any] = {
            "type": "object",
            "description": "one value per feature of the serving model (GET /model lists them)",
            "minProperties": 1,
            "additionalProperties": {"type": ["number", "string"]},
        }
        columns: dict[str, Any] = {
            "type": "object",
            "description": "one array per feature, all of one length",
            "minProperties": 1,
            "additionalProperties": {"type": "array", "items": {"type": ["number", "string"]}, "maxItems": max_rows},
        }
    else:
        features = card.feature_schema.features
        row = {
            "type": "object",
            "properties": {f.name: _feature_value(f) for f in features},
            "required": [f.name for f in features],
            "additionalProperties": False,
        }
        columns = {
            "type": "object",
            "description": "one array per feature, all of one length",
            "properties": {
                f.name: {"type": "array", "items": _feature_value(f), "minItems": 1, "maxItems": max_rows}
                for f in features
            },
            "required": [f.name for f in features],
            "additionalProperties": False,
        }

    def form(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {
            "type": "object",
            "description": description,
            "properties": {name: schema},
            "required": [name],
            "additionalProperties": False,
        }

    rows = {"type": "array", "items": _ref("Row"), "minItems": 1, "maxItems": max_rows}
    return {
        "Row": row,
        "PredictRequest": {
            "description": "exactly one of three forms",
            "oneOf": [
                form("features", _ref("Row"), "one row"),
                form("rows", rows, f"a batch of row objects (at most {max_rows})"),
                form("columns", columns, f"a batch in columnar form (at most {max_rows} rows), the cheapest to parse"),
            ],
        },
    }


def _label(card: ModelCard | None) -> dict[str, Any]:
    if card is None:
        return {"type": ["number", "string", "boolean"]}
    if card.task == "regression":
        return {"type": "number"}
    return {"enum": list(card.classes or [])}


def _response_schemas(card: ModelCard | None) -> dict[str, Any]:
    number = {"type": "number"}
    return {
        "PredictResponse": {
            "type": "object",
            "required": ["request_id", "model_name", "model_version", "request_ids", "predictions", "out_of_range"],
            "properties": {
                "request_id": {"type": "string"},
                "model_name": {"type": "string"},
                "model_version": {"type": "integer", "minimum": 1},
                "request_ids": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "one per row: <request_id>-<row>, the id an outcome refers to",
                },
                "predictions": {"type": "array", "items": _label(card)},
                "classes": {"type": "array", "items": _label(card), "description": "classification only"},
                "probabilities": {
                    "type": "array",
                    "items": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                    "description": "classification only: one array per row, in the order of classes",
                },
                "out_of_range": {
                    "type": "array",
                    "description": "values outside the training range: served, and flagged here",
                    "items": {
                        "type": "object",
                        "required": ["row", "field", "value", "minimum", "maximum"],
                        "properties": {
                            "row": {"type": "integer", "minimum": 0},
                            "field": {"type": "string"},
                            "value": number,
                            "minimum": number,
                            "maximum": number,
                        },
                    },
                },
            },
        },
        "ModelSummary": {
            "type": "object",
            "required": ["name", "version", "task", "target", "features", "metrics", "artifact_sha256", "status"],
            "properties": {
                "name": {"type": "string"},
                "version": {"type": "integer", "minimum": 1},
                "created_at": {"type": "string"},
                "task": {"type": "string", "enum": list(get_args(Task))},
                "target": {"type": "string"},
                "classes": {"type": ["array", "null"], "items": _label(card)},
                "estimator": {"type": "string"},
                "features": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "kind"],
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string", "enum": ["numeric", "categorical"]},
                            "minimum": number,
                            "maximum": number,
                            "categories": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
                "metrics": {"type": "object", "additionalProperties": number},
                "primary_metric": {"type": "string"},
                "artifact_sha256": {"type": "string"},
                "parent_version": {"type": ["integer", "null"]},
                "status": {"type": "string"},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status", "model_name"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "unavailable"]},
                "model_name": {"type": "string"},
                "model_version": {"type": "integer", "minimum": 1},
                "pinned": {"type": "boolean"},
                "artifact_sha256": {"type": "string"},
                "reason": {"type": "string", "description": "why the model is unavailable"},
            },
        },
        "OutcomesResponse": {
            "type": "object",
            "required": ["accepted", "duplicate_batch", "model_name", "request_id"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "duplicate_batch": {"type": "boolean", "description": "this exact batch was stored before"},
                "model_name": {"type": "string"},
                "request_id": {"type": "string"},
            },
        },
        "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
        "Error": {
            "type": "object",
            "description": "every error this API answers (API Gateway's own answers use the same body)",
            "required": ["code", "message", "errors"],
            "properties": {
                "code": {"type": "string", "description": "stable, machine-readable: validation_error, ..."},
                "message": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "reason"],
                        "properties": {
                            "field": {"type": "string"},
                            "reason": {"type": "string"},
                            "row": {"type": "integer", "minimum": 0, "description": "in a batch, the row"},
                        },
                    },
                },
                "request_id": {"type": "string"},
            },
        },
    }


def _outcomes_request(card: ModelCard | None, max_outcomes: int | None) -> dict[str, Any]:
    outcome = {
        "type": "object",
        "required": ["request_id", "actual"],
        "additionalProperties": False,
        "properties": {
            "request_id": {
                "type": "string",
                "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$",
                "description": "an id from request_ids of an earlier prediction",
            },
            "actual": _label(card),
        },
    }
    batch: dict[str, Any] = {"type": "array", "items": _ref("Outcome"), "minItems": 1}
    if max_outcomes is not None:
        batch["maxItems"] = max_outcomes
    return {
        "Outcome": outcome,
        "OutcomesRequest": {
            "oneOf": [
                _ref("Outcome"),
                {
                    "type": "object",
                    "required": ["outcomes"],
                    "additionalProperties": False,
                    "properties": {"outcomes": batch},
                },
            ]
        },
    }


_OK: dict[str, tuple[str, str]] = {
    "/predict": ("PredictResponse", "predictions, with probabilities for a classifier"),
    "/model": ("ModelSummary", "the serving model's card"),
    "/health": ("Health", "the model is loaded and answered its canned prediction"),
    "/openapi.json": ("OpenApiDocument", "this document"),
    "/outcomes": ("OutcomesResponse", "the outcomes were stored"),
}
_REQUEST: dict[str, str] = {"/predict": "PredictRequest", "/outcomes": "OutcomesRequest"}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": schema}}


def _operation(route: Route) -> dict[str, Any]:
    ok_schema, ok_description = _OK[route.path]
    responses: dict[str, Any] = {"200": {"description": ok_description, "content": _json(_ref(ok_schema))}}
    for status, description in ERROR_STATUSES[route.path].items():
        responses[str(status)] = {"description": description, "content": _json(_ref("Error"))}
    if route.path == "/health":
        responses["503"] = {"description": "the model is not loaded", "content": _json(_ref("Health"))}
    if "503" in responses:
        responses["503"]["headers"] = {
            "Retry-After": {
                "required": True,
                "description": f"seconds to wait before retrying ({RETRY_AFTER_SECONDS})",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            }
        }
    operation: dict[str, Any] = {
        "operationId": route.function + route.path.replace("/", "_").replace(".", "_"),
        "summary": route.summary,
        "security": [{"sigv4": []}],
        "responses": responses,
    }
    if route.has_body:
        operation["requestBody"] = {"required": True, "content": _json(_ref(_REQUEST[route.path]))}
    return operation


def openapi_document(
    card: ModelCard | None = None, *, max_rows: int, max_outcomes: int | None = None, version: str = "0.1.0"
) -> dict[str, Any]:
    """The contract of every route in ``functions/routes.py``; for ``card``'s model when given."""
    schemas = {**_request_schemas(card, max_rows), **_outcomes_request(card, max_outcomes), **_response_schemas(card)}
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    title = "lambda-mlops API" + (f": {card.name} version {card.version}" if card is not None else "")
    description = (
        f"Predictions from model {card.name!r} version {card.version} ({card.task}) and its outcomes."
        if card is not None
        else "Predictions and outcomes for the serving model; GET /openapi.json answers this document for it."
    )
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "name": "Authorization",
                    "in": "header",
                    "description": "AWS Signature Version 4 (IAM); the local server needs none",
                }
            },
        },
    }
