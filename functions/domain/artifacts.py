"""Artifact bytes: their SHA-256, checked against the model card before anything parses them."""

from __future__ import annotations

import hashlib

from functions.domain.card import ArtifactRef, ModelCard
from functions.errors import ArtifactIntegrityError


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def verify_artifact(data: bytes, ref: ArtifactRef, card: ModelCard) -> bytes:
    """Return ``data`` if it is the artifact ``ref`` describes; raise ``ArtifactIntegrityError`` otherwise.

    Args:
        data: the bytes read from the registry.
        ref: the card's record of that artifact (size and SHA-256).
        card: the card, for the error message.
    """
    digest = sha256_hex(data)
    if digest != ref.sha256 or len(data) != ref.bytes:
        raise ArtifactIntegrityError(
            f"{ref.file} of model {card.name!r} version {card.version} failed verification: SHA-256 is {digest} "
            f"({len(data)} bytes), the model card records {ref.sha256} ({ref.bytes} bytes); refusing to load it"
        )
    return data
