"""Ground-truth outcomes in the data bucket: idempotent batch writes, de-duplicated reads."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from functions.adapters.s3 import get_bytes, list_keys, put_bytes
from functions.adapters.skipped import SkippedRecords


class S3OutcomeStore:
    """Stores outcome batches under ``<prefix>/<model>/dt=YYYY-MM-DD/<content-hash>.jsonl``.

    The key is the hash of the batch's content, and the write is If-None-Match, so re-sending
    the same batch stores nothing new. Reads keep one outcome per request id (the latest), so a
    record re-sent in another batch is still seen once by the join.
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
        received_at = received_at or datetime.now(UTC)
        canonical = json.dumps(
            sorted(([rid, actual] for rid, actual in outcomes), key=lambda p: p[0]),
            separators=(",", ":"),
            sort_keys=True,
        )
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        key = f"{self.prefix}/{model_name}/dt={received_at:%Y-%m-%d}/{digest}.jsonl"
        stamp = received_at.isoformat()
        body = "".join(
            json.dumps({"request_id": rid, "actual": actual, "received_at": stamp}) + "\n" for rid, actual in outcomes
        ).encode()
        written = put_bytes(self._s3, self.bucket, key, body, content_type="application/x-ndjson", if_none_match=True)
        if written is None:
            return False
        return True

    def read_all(self, model_name: str, skipped: SkippedRecords | None = None) -> dict[str, Any]:
        """Every stored outcome of ``model_name`` by request id (latest received wins).

        A line that is not JSON, or not an object with a string ``request_id``, an ``actual`` and a string
        ``received_at``, is skipped and counted in ``skipped``.
        """
        skipped = skipped if skipped is not None else SkippedRecords()
        latest: dict[str, tuple[str, Any]] = {}
        for key in list_keys(self._s3, self.bucket, f"{self.prefix}/{model_name}/"):
            found = get_bytes(self._s3, self.bucket, key)
            if found is None:
                continue
            for number, line in enumerate(found[0].splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                    skipped.skip("outcomes", f"{key} line {number}", "not JSON")
                    continue
                if (
                    type(rec) is not dict
                    or type(rec.get("request_id")) is not str
                    or "actual" not in rec
                    or type(rec.get("received_at")) is not str
                ):
                    skipped.skip("outcomes", f"{key} line {number}", "not an outcome record")
                    continue
                prev = latest.get(rec["request_id"])
                if prev is None or rec["received_at"] >= prev[0]:
                    latest[rec["request_id"]] = (rec["received_at"], rec["actual"])
        return {rid: actual for rid, (_, actual) in latest.items()}
