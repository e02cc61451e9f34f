"""Serialising models to bytes and loading them back, refusing anything unverified."""

from __future__ import annotations

import hashlib
import io
from typing import Any

import joblib
import numpy
import scipy
import sklearn

from functions.domain.card import ModelCard
from functions.errors import ArtifactIntegrityError, IncompatibleModelError

# Libraries whose version must match between the trainer and the server: a pickle is only
# reliable when loaded by the same scikit-learn (and its numeric stack) that wrote it.
PINNED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of the libraries a model artifact depends on, as installed here."""
    return {
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


def dump_model(model: Any) -> bytes:
    """Serialise a fitted estimator with joblib into bytes."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    return buffer.getvalue()


def check_compatible(card: ModelCard, installed: dict[str, str] | None = None) -> None:
    """Refuse a model whose pinned libraries differ from the ones installed here.

    Raises:
        IncompatibleModelError: naming each library whose version differs.
    """
    installed = installed or library_versions()
    mismatches = [
        f"{lib} {card.libraries.get(lib, '?')} (this runtime has {installed[lib]})"
        for lib in PINNED_LIBRARIES
        if card.libraries.get(lib) != installed[lib]
    ]
    if mismatches:
        raise IncompatibleModelError(
            f"model {card.name!r} version {card.version} was saved with "
            + ", ".join(mismatches)
            + "; load it with the same versions or retrain it"
        )


def load_model(data: bytes, card: ModelCard) -> Any:
    """Verify ``data`` against the card's SHA-256 and library versions, then unpickle it.

    Raises:
        ArtifactIntegrityError: the bytes are not the artifact the card describes.
        IncompatibleModelError: the artifact was saved by other library versions.
    """
    digest = sha256_hex(data)
    if digest != card.artifact_sha256:
        raise ArtifactIntegrityError(
            f"artifact of model {card.name!r} version {card.version} failed verification: "
            f"SHA-256 is {digest}, the model card records {card.artifact_sha256}; refusing to load it"
        )
    check_compatible(card)
    return joblib.load(io.BytesIO(data))
