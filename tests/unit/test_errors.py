"""The one table from error to HTTP status, and the stable error body that never leaks a 5xx's details."""

from __future__ import annotations

import json

import pytest

from functions.domain.inference import ModelOutputError
from functions.errors import (
    ArtifactIntegrityError,
    ConcurrentUpdateError,
    FieldError,
    IncompatibleModelError,
    MalformedJSONError,
    MlopsError,
    ModelNotFoundError,
    ModelUnavailableError,
    PayloadTooLargeError,
    RegistryError,
    RequestError,
    RouteNotFoundError,
    StorageError,
    TrainingError,
    UnsupportedMediaTypeError,
    ValidationError,
    error_body,
    http_status_for,
)


class _NarrowerValidationError(ValidationError):
    code = "narrower"


STATUSES = [
    (MalformedJSONError("x"), 400),
    (ValidationError("x"), 422),
    (_NarrowerValidationError("x"), 422),
    (PayloadTooLargeError("x"), 413),
    (UnsupportedMediaTypeError("x"), 415),
    (RouteNotFoundError("x"), 404),
    (RequestError("x"), 400),
    (ModelUnavailableError("x"), 503),
    (ModelNotFoundError("m", 1), 500),
    (ArtifactIntegrityError("x"), 500),
    (IncompatibleModelError("x"), 500),
    (ConcurrentUpdateError("x"), 500),
    (RegistryError("x"), 500),
    (StorageError("x"), 503),
    (TrainingError("x"), 500),
    (ModelOutputError("x"), 500),
    (MlopsError("x"), 500),
]


@pytest.mark.parametrize(
    ("exc", "status"), STATUSES, ids=lambda v: type(v).__name__ if isinstance(v, Exception) else ""
)
def test_http_status_for(exc: MlopsError, status: int):
    assert http_status_for(exc) == status


def test_client_error_body_names_code_message_and_fields():
    exc = ValidationError("2 invalid field(s)", [FieldError("age", "must be a number", 3), FieldError("rows", "x")])

    assert error_body(exc, "req-1") == {
        "code": "validation_error",
        "message": "2 invalid field(s)",
        "errors": [{"field": "age", "reason": "must be a number", "row": 3}, {"field": "rows", "reason": "x"}],
        "request_id": "req-1",
    }


def test_error_body_without_request_id_or_fields():
    assert error_body(RouteNotFoundError("no route GET /x"), None) == {
        "code": "not_found",
        "message": "no route GET /x",
        "errors": [],
    }


SECRETS = [
    ArtifactIntegrityError("SHA-256 is abc, the model card records def"),
    ModelOutputError("model returned non-finite probabilities"),
    ModelNotFoundError("secret-model", 7),
    MlopsError("Traceback (most recent call last): ..."),
]


@pytest.mark.parametrize("exc", SECRETS, ids=lambda e: type(e).__name__)
def test_server_error_body_says_nothing_more(exc: MlopsError):
    body = error_body(exc, "req-9")

    assert body == {"code": "internal_error", "message": "internal error", "errors": [], "request_id": "req-9"}
    assert exc.message not in json.dumps(body)


def test_storage_unavailable_is_its_own_code_and_names_no_bucket_or_key():
    exc = StorageError("reading s3://mlops-prod-registry/models/m/aliases.json failed: AccessDenied")

    body = error_body(exc, "req-3")

    assert body == {
        "code": "storage_error",
        "message": "storage is unavailable; nothing was stored; retry after the Retry-After delay",
        "errors": [],
        "request_id": "req-3",
    }
    assert "mlops-prod-registry" not in json.dumps(body) and "AccessDenied" not in json.dumps(body)


def test_model_unavailable_names_its_code():
    body = error_body(ModelUnavailableError("no model is loaded"), "req-2")

    assert body["code"] == "model_unavailable"
    assert body["errors"] == []


def test_model_not_found_message():
    assert ModelNotFoundError("m", alias="champion").message == "model 'm' (alias 'champion') not found in the registry"
    assert ModelNotFoundError("m", 3).message == "model 'm' version 3 not found in the registry"


def test_field_error_as_dict_omits_missing_row():
    assert FieldError("x", "bad").as_dict() == {"field": "x", "reason": "bad"}
    assert FieldError("x", "bad", 0).as_dict() == {"field": "x", "reason": "bad", "row": 0}
