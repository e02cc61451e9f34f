"""The S3 model registry: immutable versions, verified loads, aliases by compare-and-swap.

Layout under the registry bucket::

    models/<name>/versions/<n>/model.onnx     serving graph, written once (If-None-Match: *)
    models/<name>/versions/<n>/model.skops    scikit-learn pipeline (skops), written once
    models/<name>/versions/<n>/card.json      model card, written once, after the artifacts
    models/<name>/aliases.json                {"aliases": {"champion": n, ...}, "history": [...]}

Writing the first artifact with If-None-Match claims version ``n``: two racing registrations
cannot both claim it, and the loser moves on to ``n + 1``. The card is the commit marker: a
version without a card (a registration that died half-way) is skipped by readers. Versions
registered before ONNX serving hold ``model.joblib``; ``mlops upgrade-registry`` adds their
graph and skops file and swaps their card (If-Match), the one change a version ever sees.

The registry hands out verified bytes (``read_artifact``); it does not parse artifacts, so the
predict function that imports it never imports scikit-learn. All aliases live in
one document, so moving several at once (champion and previous on promotion) is one atomic
compare-and-swap.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ValidationError as PydanticValidationError

from functions.adapters.s3 import get_bytes, list_prefixes, put_bytes
from functions.domain.artifacts import verify_artifact
from functions.domain.card import ArtifactRole, ModelCard
from functions.errors import (
    ArtifactIntegrityError,
    ConcurrentUpdateError,
    ModelNotFoundError,
    RegistryError,
)

Alias = Literal["champion", "challenger", "previous"]
ALIASES: tuple[str, ...] = ("champion", "challenger", "previous")
MAX_ATTEMPTS = 25
HISTORY_LIMIT = 100
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass
class AliasState:
    """The alias document and its ETag (None when it does not exist yet)."""

    aliases: dict[str, int]
    history: list[dict[str, Any]]
    etag: str | None


def validate_model_name(name: str) -> str:
    if not _NAME.match(name):
        raise RegistryError(f"invalid model name {name!r}: use 1-63 lowercase letters, digits and '-'")
    return name


class S3ModelRegistry:
    """Model registry stored in one S3 bucket (versioning on, so even a deleted key is recoverable)."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    # -- keys -------------------------------------------------------------------------------
    @staticmethod
    def _prefix(name: str) -> str:
        return f"models/{validate_model_name(name)}/"

    def _artifact_key(self, name: str, version: int, file: str) -> str:
        return f"{self._prefix(name)}versions/{version}/{file}"

    def _card_key(self, name: str, version: int) -> str:
        return f"{self._prefix(name)}versions/{version}/card.json"

    def _aliases_key(self, name: str) -> str:
        return f"{self._prefix(name)}aliases.json"

    # -- versions ---------------------------------------------------------------------------
    def _allocated_versions(self, name: str) -> list[int]:
        prefixes = list_prefixes(self._s3, self.bucket, f"{self._prefix(name)}versions/")
        out = []
        for p in prefixes:
            tail = p.rstrip("/").rsplit("/", 1)[-1]
            if tail.isdigit():
                out.append(int(tail))
        return sorted(out)

    def register(self, name: str, files: Mapping[str, bytes], build_card: Callable[[int], ModelCard]) -> ModelCard:
        """Store ``files`` as the next version of ``name`` and write its card last.

        Args:
            name: model name.
            files: file name -> bytes; the first one written claims the version number.
            build_card: called with the allocated version number; returns the card to store, whose
                ``artifacts`` must describe exactly ``files``.

        Returns:
            The stored card. Raises ``ConcurrentUpdateError`` if no version could be claimed.
        """
        if not files:
            raise RegistryError("a version needs at least one artifact")
        first, *rest = files
        allocated = self._allocated_versions(name)
        candidate = (allocated[-1] if allocated else 0) + 1
        for _ in range(MAX_ATTEMPTS):
            if self._put_once(name, candidate, first, files[first]) is None:
                candidate += 1
                continue
            card = build_card(candidate)
            if card.version != candidate or card.name != name:
                raise RegistryError("model card does not name the version being registered")
            described = {ref.file: ref for ref in card.artifacts.values()}
            if set(described) != set(files):
                raise RegistryError(f"model card lists {sorted(described)}, the registration writes {sorted(files)}")
            for file, data in files.items():
                verify_artifact(data, described[file], card)
            for file in rest:
                if self._put_once(name, candidate, file, files[file]) is None:
                    raise ConcurrentUpdateError(f"{file} of {name} version {candidate} was written by someone else")
            if self._put_card(card, if_match=None) is None:
                raise ConcurrentUpdateError(f"card of {name} version {candidate} was written by someone else")
            return card
        raise ConcurrentUpdateError(f"could not allocate a version of {name} after {MAX_ATTEMPTS} attempts")

    def _put_once(self, name: str, version: int, file: str, data: bytes) -> str | None:
        key = self._artifact_key(name, version, file)
        return put_bytes(self._s3, self.bucket, key, data, if_none_match=True)

    def _put_card(self, card: ModelCard, if_match: str | None) -> str | None:
        body = card.model_dump_json(indent=2, exclude_none=False).encode()
        key = self._card_key(card.name, card.version)
        return put_bytes(
            self._s3,
            self.bucket,
            key,
            body,
            content_type="application/json",
            if_none_match=if_match is None,
            if_match=if_match,
        )

    def card_etag(self, name: str, version: int) -> str:
        """The ETag of a version's card (for ``upgrade_version``'s compare-and-swap)."""
        found = get_bytes(self._s3, self.bucket, self._card_key(name, version))
        if found is None:
            raise ModelNotFoundError(name, version)
        return found[1]

    def upgrade_version(self, card: ModelCard, files: Mapping[str, bytes], expect_etag: str) -> ModelCard:
        """Add ``files`` to an existing version and swap in its new ``card`` if the old card is unchanged.

        Only ``mlops upgrade-registry`` calls this: the converted artifacts are new keys (written
        once), and the card is replaced by compare-and-swap on the ETag read before converting.
        """
        described = {ref.file: ref for ref in card.artifacts.values()}
        for file, data in files.items():
            if file not in described:
                raise RegistryError(f"the upgraded card does not describe {file}")
            verify_artifact(data, described[file], card)
            key = self._artifact_key(card.name, card.version, file)
            existing = get_bytes(self._s3, self.bucket, key)
            if existing is not None:
                verify_artifact(existing[0], described[file], card)  # a retried upgrade wrote the same bytes
                continue
            if self._put_once(card.name, card.version, file, data) is None:
                raise ConcurrentUpdateError(f"{file} of {card.name} version {card.version} was written meanwhile")
        if self._put_card(card, if_match=expect_etag) is None:
            raise ConcurrentUpdateError(f"the card of {card.name} version {card.version} changed during the upgrade")
        return card

    def get_card(self, name: str, version: int) -> ModelCard:
        """The card of one version. Raises ``ModelNotFoundError`` if there is none."""
        found = get_bytes(self._s3, self.bucket, self._card_key(name, version))
        if found is None:
            raise ModelNotFoundError(name, version)
        try:
            return ModelCard.model_validate_json(found[0])
        except PydanticValidationError as exc:
            raise RegistryError(
                f"model card of {name} version {version} is invalid: {exc.error_count()} error(s)"
            ) from exc

    def list_versions(self, name: str) -> list[ModelCard]:
        """Cards of every committed version, oldest first."""
        cards = []
        for version in self._allocated_versions(name):
            try:
                cards.append(self.get_card(name, version))
            except ModelNotFoundError:
                continue  # registration died between artifact and card
        return cards

    def set_status(self, name: str, version: int, status: str, reason: str) -> None:
        """Record a version's current status (the card itself is immutable), e.g. rejected with a reason."""
        self.get_card(name, version)
        body = json.dumps(
            {"version": version, "status": status, "reason": reason, "at": datetime.now(UTC).isoformat()}, indent=2
        ).encode()
        key = f"{self._prefix(name)}versions/{version}/status.json"
        put_bytes(self._s3, self.bucket, key, body, content_type="application/json")

    def get_status(self, name: str, version: int) -> dict[str, Any] | None:
        """The status recorded by ``set_status``, or None when the version still has its card's status."""
        found = get_bytes(self._s3, self.bucket, f"{self._prefix(name)}versions/{version}/status.json")
        return None if found is None else dict(json.loads(found[0]))

    def list_models(self) -> list[str]:
        return [p.rstrip("/").rsplit("/", 1)[-1] for p in list_prefixes(self._s3, self.bucket, "models/")]

    def read_artifact(self, card: ModelCard, role: ArtifactRole) -> bytes:
        """The bytes of one artifact of ``card``'s version, verified against the card's SHA-256 and size.

        Raises:
            ArtifactIntegrityError: the artifact is missing or is not the one the card describes.
        """
        ref = card.artifacts.get(role)
        if ref is None:
            raise ArtifactIntegrityError(f"model {card.name!r} version {card.version} has no {role} artifact")
        found = get_bytes(self._s3, self.bucket, self._artifact_key(card.name, card.version, ref.file))
        if found is None:
            raise ArtifactIntegrityError(
                f"{ref.file} of model {card.name!r} version {card.version} is missing; refusing to load"
            )
        return verify_artifact(found[0], ref, card)

    # -- aliases ----------------------------------------------------------------------------
    def alias_state(self, name: str) -> AliasState:
        found = get_bytes(self._s3, self.bucket, self._aliases_key(name))
        if found is None:
            return AliasState(aliases={}, history=[], etag=None)
        try:
            doc = json.loads(found[0])
        except json.JSONDecodeError as exc:
            raise RegistryError(f"alias document of {name} is not valid JSON") from exc
        return AliasState(aliases=dict(doc.get("aliases", {})), history=list(doc.get("history", [])), etag=found[1])

    def get_aliases(self, name: str) -> dict[str, int]:
        return self.alias_state(name).aliases

    def resolve(self, name: str, alias: str) -> int:
        """The version an alias points at. Raises ``ModelNotFoundError`` if it is unset."""
        version = self.get_aliases(name).get(alias)
        if version is None:
            raise ModelNotFoundError(name, alias=alias)
        return int(version)

    def set_aliases(
        self,
        name: str,
        changes: Mapping[str, int | None],
        *,
        expect: Mapping[str, int | None] | None = None,
        reason: str = "",
    ) -> dict[str, int]:
        """Atomically move several aliases (None removes one), retrying on concurrent writers.

        Args:
            name: model name.
            changes: alias to new version (or None to clear it).
            expect: optional current values that must still hold, or ``ConcurrentUpdateError`` is raised.
            reason: recorded in the alias history.

        Returns:
            The aliases after the change.
        """
        for alias in changes:
            if alias not in ALIASES:
                raise RegistryError(f"unknown alias {alias!r}; aliases are {', '.join(ALIASES)}")
        for target in {v for v in changes.values() if v is not None}:
            self.get_card(name, target)  # the target must exist
        for _ in range(MAX_ATTEMPTS):
            state = self.alias_state(name)
            if expect is not None:
                for alias, expected in expect.items():
                    if state.aliases.get(alias) != expected:
                        raise ConcurrentUpdateError(
                            f"alias {alias!r} of {name} is {state.aliases.get(alias)}, expected {expected}"
                        )
            aliases = dict(state.aliases)
            now = datetime.now(UTC).isoformat()
            history = list(state.history)
            for alias, version in changes.items():
                history.append({"at": now, "alias": alias, "from": aliases.get(alias), "to": version, "reason": reason})
                if version is None:
                    aliases.pop(alias, None)
                else:
                    aliases[alias] = int(version)
            body = json.dumps({"aliases": aliases, "history": history[-HISTORY_LIMIT:]}, indent=2).encode()
            written = put_bytes(
                self._s3,
                self.bucket,
                self._aliases_key(name),
                body,
                content_type="application/json",
                if_none_match=state.etag is None,
                if_match=state.etag,
            )
            if written is not None:
                return aliases
        raise ConcurrentUpdateError(f"aliases of {name} kept changing; gave up after {MAX_ATTEMPTS} attempts")
