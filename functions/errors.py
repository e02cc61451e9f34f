"""The project's exception hierarchy and its one table from error to HTTP status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of a request (``row`` is set for batch requests)."""

    field: str
    reason: str
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "reason": self.reason}
        if self.row is not None:
            out["row"] = self.row
        return out


class MlopsError(Exception):
    """Base of every error this project raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RequestError(MlopsError):
    """The client sent something we cannot accept (4xx)."""

    code = "invalid_request"

    def __init__(self, message: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [])


class MalformedJSONError(RequestError):
    code = "malformed_json"


class ValidationError(RequestError):
    code = "validation_error"


class PayloadTooLargeError(RequestError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(RequestError):
    code = "unsupported_media_type"


class RouteNotFoundError(RequestError):
    code = "not_found"


class MethodNotAllowedError(RequestError):
    code = "method_not_allowed"


class RegistryError(MlopsError):
    """Something is wrong with the model registry."""

    code = "registry_error"


class ModelNotFoundError(RegistryError):
    code = "model_not_found"

    def __init__(self, name: str, version: int | str | None = None, alias: str | None = None) -> None:
        what = f"model {name!r}"
        if version is not None:
            what += f" version {version}"
        if alias is not None:
            what += f" (alias {alias!r})"
        super().__init__(f"{what} not found in the registry")
        self.name = name
        self.version = version
        self.alias = alias


class ArtifactIntegrityError(RegistryError):
    """The stored artifact does not match the SHA-256 recorded in its model card."""

    code = "artifact_integrity_error"


class IncompatibleModelError(RegistryError):
    """The artifact was saved by library versions this runtime cannot load safely."""

    code = "incompatible_model"


class UntrustedArtifactError(ArtifactIntegrityError):
    """An artifact asks to load a type outside the allow-list, or is in a format that can run code."""

    code = "untrusted_artifact"


class ConcurrentUpdateError(RegistryError):
    """A compare-and-swap write lost its race too many times."""

    code = "concurrent_update"


class StorageError(MlopsError):
    """A write or read against the storage backend failed: a dependency's failure, answered 503 (retry later)."""

    code = "storage_error"
    public_message = "storage is unavailable; nothing was stored; retry after the Retry-After delay"


class ModelUnavailableError(MlopsError):
    """The function could not load a model to serve."""

    code = "model_unavailable"


class UnconvertedModelError(ModelUnavailableError):
    """A version registered before serving graphs existed: it has a pickle and no ONNX graph."""

    code = "model_not_converted"


class NoChampionError(ModelUnavailableError):
    """This Lambda version was deployed before any model was champion: it serves none, by design."""

    code = "no_champion"


class TrainingError(MlopsError):
    """Training could not run on the given data or specification."""

    code = "training_error"


class GraphFidelityError(TrainingError):
    """The ONNX serving graph does not reproduce the pipeline's answers; the candidate is not registered."""

    code = "graph_fidelity"


# The one place where an error becomes an HTTP status.
HTTP_STATUS: dict[type[MlopsError], int] = {
    MalformedJSONError: 400,
    ValidationError: 422,
    PayloadTooLargeError: 413,
    UnsupportedMediaTypeError: 415,
    RouteNotFoundError: 404,
    MethodNotAllowedError: 405,
    RequestError: 400,
    ModelUnavailableError: 503,
    StorageError: 503,
}
# Seconds a client waits before retrying a 503 (the ``Retry-After`` header of every 503).
RETRY_AFTER_SECONDS = 5


def http_status_for(exc: MlopsError) -> int:
    """Return the HTTP status for ``exc``, walking its class hierarchy; 500 when unmapped."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def error_body(exc: MlopsError, request_id: str | None) -> dict[str, Any]:
    """The stable error body: code, message, field details. Internal errors say nothing more."""
    status = http_status_for(exc)
    if isinstance(exc, StorageError):  # its message names buckets and keys: only the code and what to do
        body: dict[str, Any] = {"code": exc.code, "message": StorageError.public_message, "errors": []}
    elif status >= 500 and not isinstance(exc, ModelUnavailableError):
        body = {"code": "internal_error", "message": "internal error", "errors": []}
    else:
        errors = exc.errors if isinstance(exc, RequestError) else []
        body = {"code": exc.code, "message": exc.message, "errors": [e.as_dict() for e in errors]}
    if request_id:
        body["request_id"] = request_id
    return body
