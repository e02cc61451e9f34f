"""Ground-truth outcomes in the data bucket: idempotent batch writes, de-duplicated reads bounded by time."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.adapters.s3 import get_bytes, keys_after, list_keys, put_bytes
from functions.adapters.skipped import SkippedRecords

# How long before a window began an outcome is still read by ``read_since``. An outcome is received
# after the request it labels was served, so the outcomes of a window's requests are all received
# after the window began; the grace absorbs the clocks that stamp the two (predict's ``ts`` and
# log-outcome's ``received_at``, on different hosts) disagreeing. An hour is far more than clocks
# drift and costs at most the previous day's partition when a window begins just after midnight.
OUTCOME_GRACE = timedelta(hours=1)


class S3OutcomeStore:
    """Stores outcome batches under ``<prefix>/<model>/dt=YYYY-MM-DD/hour=HH/<content-hash>.jsonl``.

    The key is the hash of the batch's content, and the write is If-None-Match, so re-sending
    the same batch within the hour stores nothing new. Reads keep one outcome per request id (the
    latest), so a record re-sent in another batch or hour is still seen once by the join. ``dt=``
    and ``hour=`` are the UTC day and hour the batch was received, so ``read_since`` lists only
    the days since a window began and opens only the hours. (Batches stored before hours were
    part of the key, ``dt=YYYY-MM-DD/<content-hash>.jsonl``, are opened for their whole day.)
    """

    def __init__(self, s3: Any, bucket: str, prefix: str = "outcomes") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def put_batch(self, model_name: str, outcomes: list[tuple[str, Any]], received_at: datetime | None = None) -> bool:
        """Store outcomes ``(request_id, actual)``; confirmed when this returns.

        Returns:
            True if a new object was written, False if the identical batch was already stored.

        Raises:
            StorageError: the write failed; nothing may be assumed stored.
        """
        received_at = (received_at or datetime.now(UTC)).astimezone(UTC)
        canonical = json.dumps(
            sorted(([rid, actual] for rid, actual in outcomes), key=lambda p: p[0]),
            separators=(",", ":"),
            sort_keys=True,
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        key = f"{self.prefix}/{model_name}/dt={received_at:%Y-%m-%d}/hour={received_at:%H}/{digest}.jsonl"
        stamp = received_at.isoformat()
        body = "".join(
            json.dumps({"request_id": rid, "actual": actual, "received_at": stamp}) + "\n" for rid, actual in outcomes
        ).encode()
        written = put_bytes(self._s3, self.bucket, key, body, content_type="application/x-ndjson", if_none_match=True)
        if written is None:
            return False
        return True

    def read_all(self, model_name: str, skipped: SkippedRecords | None = None) -> dict[str, Any]:
        """Every stored outcome of ``model_name`` by request id (latest received wins), however old.

        For an operator's look at the whole history; the checks read ``read_since`` their window. A
        line that is not JSON, or not an object with a string ``request_id``, an ``actual`` and a
        string ``received_at``, is skipped and counted in ``skipped``.
        """
        skipped = skipped if skipped is not None else SkippedRecords()
        keys = list_keys(self._s3, self.bucket, self._model_prefix(model_name))
        return self._latest(keys, None, skipped)

    def read_since(
        self,
        model_name: str,
        since: datetime,
        *,
        grace: timedelta = OUTCOME_GRACE,
        skipped: SkippedRecords | None = None,
    ) -> dict[str, Any]:
        """The outcomes of ``model_name`` received at or after ``since - grace``, by request id (latest wins).

        Only the ``dt=`` days from that moment's UTC day on are listed (one listing that starts
        after the earlier days), and of those only the ``hour=`` partitions from that moment's hour
        on are opened; a record of that first hour received earlier is left out. There is no upper
        bound: a label received after the window ended (a late label) is read as long as it is
        stored when this is called.

        Args:
            model_name: the model whose outcomes are read.
            since: when the window began (timezone-aware), e.g. a drift-check window's start,
                the first day of a retrain's capture window or the start of a canary stage.
            grace: how long before ``since`` an outcome still counts (see ``OUTCOME_GRACE``).
            skipped: counts corrupt records, as ``read_all`` does; a record whose ``received_at``
                is not an ISO 8601 time is counted there too.

        Returns:
            The actual value of each request id.

        Raises:
            StorageError: listing or reading failed.
        """
        skipped = skipped if skipped is not None else SkippedRecords()
        cutoff = (since - grace).astimezone(UTC)
        base = self._model_prefix(model_name)
        # Keys sort by day; every key of the cutoff's day and later sorts after "<base>dt=<that day>".
        listed = keys_after(self._s3, self.bucket, base, f"{base}dt={cutoff:%Y-%m-%d}")
        first_hour = f"{base}dt={cutoff:%Y-%m-%d}/hour={cutoff:%H}/"
        keys = [key for key in listed if not _received_in_an_earlier_hour(key, first_hour)]
        return self._latest(keys, cutoff, skipped)

    # -- internals ----------------------------------------------------------------------------
    def _model_prefix(self, model_name: str) -> str:
        return f"{self.prefix}/{model_name}/"

    def _latest(self, keys: list[str], cutoff: datetime | None, skipped: SkippedRecords) -> dict[str, Any]:
        latest: dict[str, tuple[str, Any]] = {}
        for key in keys:
            found = get_bytes(self._s3, self.bucket, key)
            if found is None:
                continue
            for number, line in enumerate(found[0].splitlines(), start=1):
                rec = _outcome(line)
                if isinstance(rec, str):
                    skipped.skip("outcomes", f"{key} line {number}", rec)
                    continue
                if rec is None:
                    continue
                if cutoff is not None:
                    received = _received(rec["received_at"])
                    if received is None:
                        skipped.skip("outcomes", f"{key} line {number}", "received_at is not an ISO 8601 time")
                        continue
                    if received < cutoff:
                        continue
                prev = latest.get(rec["request_id"])
                if prev is None or rec["received_at"] >= prev[0]:
                    latest[rec["request_id"]] = (rec["received_at"], rec["actual"])
        return {rid: actual for rid, (_, actual) in latest.items()}


def _received_in_an_earlier_hour(key: str, first_hour: str) -> bool:
    """Whether ``key`` sits in an ``hour=`` partition before ``first_hour`` (``.../dt=D/hour=HH/``).

    Partitions of later days, and keys without an hour (older batches), are never earlier: they are
    read, and their records filtered by ``received_at``.
    """
    parts = key.rsplit("/", 3)
    if len(parts) < 4 or not parts[2].startswith("hour="):
        return False
    return f"{parts[0]}/{parts[1]}/{parts[2]}/" < first_hour


def _outcome(line: bytes) -> dict[str, Any] | str | None:
    """The outcome record one line holds, None for a blank line, or why it is not one."""
    if not line.strip():
        return None
    try:
        rec = json.loads(line)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return "not JSON"
    if (
        type(rec) is not dict
        or type(rec.get("request_id")) is not str
        or "actual" not in rec
        or type(rec.get("received_at")) is not str
    ):
        return "not an outcome record"
    return rec


def _received(stamp: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    # put_batch writes UTC with its offset; a stamp without one is read as UTC rather than refused.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
