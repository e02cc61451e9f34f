"""The rollout state document in the registry bucket, updated by compare-and-swap."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from functions.adapters.registry import validate_model_name
from functions.adapters.s3 import get_bytes, put_bytes
from functions.domain.rollout import RolloutState
from functions.errors import ConcurrentUpdateError, RegistryError


class S3RolloutStore:
    """``rollouts/<model>/state.json``: survives restarts; every write is If-Match on the ETag read."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    @staticmethod
    def _key(model_name: str) -> str:
        return f"rollouts/{validate_model_name(model_name)}/state.json"

    def load(self, model_name: str) -> tuple[RolloutState, str | None]:
        """The state and its ETag (None when no rollout was ever requested)."""
        found = get_bytes(self._s3, self.bucket, self._key(model_name))
        if found is None:
            return RolloutState(model_name=model_name), None
        try:
            return RolloutState.model_validate_json(found[0]), found[1]
        except ValueError as exc:
            raise RegistryError(f"rollout state of {model_name} is invalid") from exc

    def save(self, state: RolloutState, etag: str | None) -> str:
        """Write ``state`` if nobody wrote since ``etag`` was read; raises ``ConcurrentUpdateError`` otherwise."""
        written = put_bytes(
            self._s3,
            self.bucket,
            self._key(state.model_name),
            state.model_dump_json(indent=2).encode(),
            content_type="application/json",
            if_none_match=etag is None,
            if_match=etag,
        )
        if written is None:
            raise ConcurrentUpdateError(f"rollout state of {state.model_name} changed while this update ran")
        return written

    def request(self, model_name: str, challenger_version: int, champion_version: int | None, reason: str) -> bool:
        """Ask the controller to canary ``challenger_version``.

        Returns:
            False (and changes nothing) when a rollout is already under way.
        """
        state, etag = self.load(model_name)
        if state.active:
            return False
        now = datetime.now(UTC)
        fresh = RolloutState(
            model_name=model_name,
            status="pending",
            challenger_version=challenger_version,
            champion_version=champion_version,
            requested_at=now,
            reason=reason,
            history=state.history,
            rollbacks=state.rollbacks,
        )
        fresh.note(now, f"rollout of v{challenger_version} requested: {reason}")
        self.save(fresh, etag)
        return True
