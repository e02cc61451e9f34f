"""Coordination in the registry bucket: the retrain lock with expiry, the cooldown record, rejected
candidates, and the deploy lock that makes code deploys and model canaries take turns.

Layout::

    locks/deploy.json                        the deploy lock: owner, reason, acquired_at, expires_at
    locks/retrain/<model>.json               the lock: owner token, holder, acquired_at, expires_at
    locks/retrain/<model>.last.json          the last retrain: start time, outcome, reasons (the cooldown)
    models/<model>/rejections/<ts>-<id>.json one document per rejected candidate, written once

The retrain lock is taken with If-None-Match: *, so of two runs starting together exactly one wins. A lock
past its expiry (its holder died) is taken over with If-Match on the ETag that was read as
expired: of two runs taking it over together, only one write matches that ETag. Every lock body
holds a fresh random owner token, so its ETag (the MD5 of the body) is unique to one acquisition.
Release deletes with If-Match on the ETag after checking the owner token, so a run whose lock
expired and was taken over can never delete its successor's lock. S3 supports conditional deletes
on general purpose buckets, and moto enforces them; without them there would be a window between
reading the lock and deleting it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from functions.adapters.registry import validate_model_name
from functions.adapters.s3 import error_code, get_bytes, is_not_found, is_precondition_failed, list_keys, put_bytes
from functions.errors import ConcurrentUpdateError, MlopsError, StorageError

LOCK_PREFIX = "locks/retrain"
DEPLOY_LOCK_KEY = "locks/deploy.json"
_JSON = "application/json"
RunOutcome = Literal["running", "registered", "rejected", "skipped", "failed"]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class LockDocument(BaseModel):
    """The body of the lock object."""

    model_config = ConfigDict(extra="forbid")

    owner: str
    holder: str = ""
    acquired_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class LockState:
    """The lock as found in S3 (``document`` is None when its body could not be read as a lock)."""

    document: LockDocument | None
    etag: str

    def expired(self, now: datetime) -> bool:
        """A lock past its expiry, or one whose body is unreadable (it would otherwise never expire)."""
        return self.document is None or self.document.expires_at <= now


@dataclass(frozen=True)
class Lease:
    """Proof of holding the lock: the owner token and the ETag of the lock object it wrote."""

    model_name: str
    owner: str
    etag: str
    acquired_at: datetime
    expires_at: datetime
    took_over_from: str | None = None


def _delete_if_match(s3: Any, bucket: str, key: str, etag: str) -> bool:
    """Delete ``key`` if its ETag is still ``etag``; False if it is gone or was rewritten meanwhile."""
    try:
        s3.delete_object(Bucket=bucket, Key=key, IfMatch=etag)
    except ClientError as exc:
        if is_precondition_failed(exc) or is_not_found(exc):
            return False
        raise StorageError(f"releasing s3://{bucket}/{key} failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"releasing s3://{bucket}/{key} failed: {type(exc).__name__}") from exc
    return True


class S3RetrainLock:
    """At most one retrain per model at a time; a dead holder's lock expires after ``ttl_seconds``.

    ``ttl_seconds`` must be at least the retrain function's timeout, so a running retrain never
    loses its lock (Lambda stops a function at 15 minutes; the default TTL is 900 s).
    """

    def __init__(self, s3: Any, bucket: str, ttl_seconds: int, clock: Clock = utc_now) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.ttl = timedelta(seconds=ttl_seconds)
        self._clock = clock

    @staticmethod
    def key(model_name: str) -> str:
        return f"{LOCK_PREFIX}/{validate_model_name(model_name)}.json"

    def current(self, model_name: str) -> LockState | None:
        """The lock object of ``model_name`` and its ETag, or None when nobody holds it."""
        found = get_bytes(self._s3, self.bucket, self.key(model_name))
        if found is None:
            return None
        try:
            document: LockDocument | None = LockDocument.model_validate_json(found[0])
        except PydanticValidationError:
            document = None
        return LockState(document=document, etag=found[1])

    def acquire(self, model_name: str, holder: str = "") -> Lease | None:
        """Take the lock, or take over an expired one.

        Args:
            model_name: the model being retrained.
            holder: who is asking (recorded in the lock, for the operator who finds it held).

        Returns:
            The lease, or None when another run holds an unexpired lock.
        """
        key = self.key(model_name)
        for _ in range(3):
            now = self._clock()
            doc = LockDocument(owner=uuid.uuid4().hex, holder=holder, acquired_at=now, expires_at=now + self.ttl)
            body = doc.model_dump_json().encode()
            etag = put_bytes(self._s3, self.bucket, key, body, content_type="application/json", if_none_match=True)
            if etag is not None:
                return Lease(model_name, doc.owner, etag, doc.acquired_at, doc.expires_at)
            held = self.current(model_name)
            if held is None:
                continue  # released between our write and our read: try again
            if not held.expired(now):
                return None
            etag = put_bytes(self._s3, self.bucket, key, body, content_type="application/json", if_match=held.etag)
            if etag is not None:
                previous = held.document.owner if held.document else "unreadable lock"
                return Lease(model_name, doc.owner, etag, doc.acquired_at, doc.expires_at, took_over_from=previous)
            # Another run took it over or released it first: look again.
        return None

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still the lock (not expired, not taken over)."""
        held = self.current(lease.model_name)
        return (
            held is not None
            and held.document is not None
            and held.document.owner == lease.owner
            and not held.expired(self._clock())
        )

    def release(self, lease: Lease) -> bool:
        """Delete the lock if it is still ours.

        Returns:
            True if our lock was deleted; False if it was already gone or is now someone else's.
        """
        held = self.current(lease.model_name)
        if held is None or held.document is None or held.document.owner != lease.owner:
            return False
        return _delete_if_match(self._s3, self.bucket, self.key(lease.model_name), held.etag)


class RetrainEvidence(BaseModel):
    """What the last retrain that trained a candidate learned from: its labelled captured rows and the
    drift (per-feature PSI) that triggered it. A drift event that brings nothing beyond this does not retrain."""

    model_config = ConfigDict(extra="forbid")

    captured_rows: int = 0
    captured_rows_sha256: str = ""
    drift_psi: dict[str, float] = Field(default_factory=dict)


class RetrainRun(BaseModel):
    """One retrain run, as the cooldown record keeps it."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    run_id: str
    trigger: str
    started_at: datetime
    finished_at: datetime | None = None
    outcome: RunOutcome = "running"
    champion_version: int | None = None
    candidate_version: int | None = None
    reasons: list[str] = Field(default_factory=list)
    evidence: RetrainEvidence | None = Field(default=None, description="of the last run that trained, carried over")

    def cooldown_ends(self, cooldown_seconds: float) -> datetime:
        """When the next retrain may start: ``cooldown_seconds`` after this one started, whatever its outcome."""
        return self.started_at + timedelta(seconds=cooldown_seconds)


class S3RetrainHistory:
    """The cooldown record (the last run of each model) and the documents of rejected candidates."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    @staticmethod
    def last_key(model_name: str) -> str:
        return f"{LOCK_PREFIX}/{validate_model_name(model_name)}.last.json"

    @staticmethod
    def rejections_prefix(model_name: str) -> str:
        return f"models/{validate_model_name(model_name)}/rejections/"

    def last(self, model_name: str) -> RetrainRun | None:
        """The last retrain run of ``model_name``, or None if there never was one (or its record is unreadable)."""
        found = get_bytes(self._s3, self.bucket, self.last_key(model_name))
        if found is None:
            return None
        try:
            return RetrainRun.model_validate_json(found[0])
        except PydanticValidationError:
            return None  # a corrupt record must not block retraining forever

    def record(self, run: RetrainRun) -> None:
        """Overwrite the cooldown record with ``run`` (only the lock holder writes it). Raises ``StorageError``."""
        body = run.model_dump_json(indent=2).encode()
        if (
            put_bytes(self._s3, self.bucket, self.last_key(run.model_name), body, content_type="application/json")
            is None
        ):
            raise StorageError(f"cooldown record of {run.model_name} was refused")

    def record_rejection(self, model_name: str, run_id: str, at: datetime, document: dict[str, Any]) -> str:
        """Store the document of a rejected candidate, once.

        Returns:
            Its key, ``models/<model>/rejections/<UTC timestamp>-<run id>.json``.
        """
        key = f"{self.rejections_prefix(model_name)}{at.astimezone(UTC):%Y%m%dT%H%M%SZ}-{run_id[:12]}.json"
        body = json.dumps(document, indent=2, default=str).encode()
        if put_bytes(self._s3, self.bucket, key, body, content_type="application/json", if_none_match=True) is None:
            raise StorageError(f"rejection record {key} already exists")
        return key

    def rejections(self, model_name: str) -> list[dict[str, Any]]:
        """Every rejection document of ``model_name``, oldest first."""
        out = []
        for key in sorted(list_keys(self._s3, self.bucket, self.rejections_prefix(model_name))):
            found = get_bytes(self._s3, self.bucket, key)
            if found is not None:
                out.append({"key": key, **json.loads(found[0])})
        return out


# -- the deploy lock ------------------------------------------------------------------------------------------
class DeployLock(BaseModel):
    """The body of the deploy lock: who deploys, why, and until when the lock holds if they die."""

    owner: str = Field(min_length=1)
    reason: str
    acquired_at: datetime
    expires_at: datetime

    def describe(self) -> str:
        return (
            f"{self.owner} ({self.reason}) since {self.acquired_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, "
            f"until {self.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
        )


class DeployLockHeldError(MlopsError):
    """Someone else holds the deploy lock and it has not expired."""

    code = "deploy_lock_held"

    def __init__(self, lock: DeployLock) -> None:
        super().__init__(f"the deploy lock is held by {lock.describe()}")
        self.lock = lock


@dataclass(frozen=True)
class DeployLease:
    """Proof of holding the deploy lock: the lock as written and the ETag of that write."""

    lock: DeployLock
    etag: str


class S3DeployLock:
    """At most one code deploy at a time; while it is held the rollout controller makes no step (it reads
    ``current`` every tick).

    Taken with If-None-Match: *; an expired lock (or an unreadable one, which would otherwise never
    expire) is taken over with If-Match on the ETag read as expired, so of two takers exactly one wins.
    The body carries ``acquired_at`` to the microsecond, so its ETag (the MD5 of the body) names one
    acquisition (unless one owner takes it twice, with one reason, within one microsecond). Release
    deletes with If-Match on the lease's ETag: S3 supports conditional deletes and moto enforces them,
    so the comparison and the delete are one request, with no window between.
    """

    def __init__(self, s3: Any, bucket: str, clock: Clock = utc_now) -> None:
        self._s3 = s3
        self.bucket = bucket
        self._clock = clock

    def _read(self) -> tuple[DeployLock | None, str] | None:
        """The lock and its ETag (the lock None when its body is unreadable), or None when there is none."""
        found = get_bytes(self._s3, self.bucket, DEPLOY_LOCK_KEY)
        if found is None:
            return None
        try:
            return DeployLock.model_validate_json(found[0]), found[1]
        except PydanticValidationError:
            return None, found[1]

    def current(self) -> DeployLock | None:
        """The lock, or None when nobody holds it (absent, expired, or unreadable)."""
        found = self._read()
        if found is None or found[0] is None or found[0].expires_at <= self._clock():
            return None
        return found[0]

    def acquire(self, owner: str, reason: str, ttl_seconds: float) -> DeployLease:
        """Take the deploy lock, or take over an expired one.

        Args:
            owner: who deploys (a user, a CI job), as an operator who finds the lock held reads it.
            reason: what for (a stack and a commit, say).
            ttl_seconds: how long the lock holds if its owner never releases it; longer than the deploy.

        Returns:
            The lease, for ``release``.

        Raises:
            DeployLockHeldError: someone holds the lock and it has not expired.
            ConcurrentUpdateError: the lock kept changing hands while this call tried to take it.
        """
        if not ttl_seconds > 0:
            raise ValueError(f"ttl_seconds must be positive, got {ttl_seconds!r}")
        for _ in range(3):
            now = self._clock()
            lock = DeployLock(
                owner=owner, reason=reason, acquired_at=now, expires_at=now + timedelta(seconds=ttl_seconds)
            )
            body = lock.model_dump_json().encode()
            etag = put_bytes(self._s3, self.bucket, DEPLOY_LOCK_KEY, body, content_type=_JSON, if_none_match=True)
            if etag is not None:
                return DeployLease(lock, etag)
            found = self._read()
            if found is None:
                continue  # released between our write and our read: try again
            held, held_etag = found
            if held is not None and held.expires_at > now:
                raise DeployLockHeldError(held)
            etag = put_bytes(self._s3, self.bucket, DEPLOY_LOCK_KEY, body, content_type=_JSON, if_match=held_etag)
            if etag is not None:
                return DeployLease(lock, etag)
            # Someone else took it over or released it first: look again.
        raise ConcurrentUpdateError("the deploy lock kept changing hands; try again")

    def release(self, lease: DeployLease) -> bool:
        """Delete the lock if it is still this lease's.

        Returns:
            True if this lease's lock was deleted; False if it was gone or is someone else's now.
        """
        return _delete_if_match(self._s3, self.bucket, DEPLOY_LOCK_KEY, lease.etag)
