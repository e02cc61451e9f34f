"""Hourly drift aggregates in the data bucket, next to the capture they summarize.

Layout, under ``<prefix>/<model>/dt=YYYY-MM-DD/hour=HH/``:

- ``aggregate.json``: the :class:`HourAggregate` (counts, KS samples, covered capture keys).
  Written with If-None-Match when new and If-Match on the ETag read when grown, so two writers
  never lose each other's rows: the loser's update is dropped and the next reader adds the
  objects again.
- ``rows-<sha256 prefix>.json.gz``: the :class:`HourRows` it names, when the hour has more rows than
  ``inline_rows`` (the aggregate's KS sample size by default: up to it, the sample holds every row
  already, and the outputs go inline, saving a request per hour). Written before the aggregate and
  named by content, so an aggregate never points at rows of another update. The previous rows
  object is deleted once the aggregate that replaced it is in place; a reader that finds its rows
  gone treats the hour as having no aggregate.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections.abc import Iterator
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from functions.adapters.capture_reader import partition_hour
from functions.adapters.s3 import error_code, get_bytes, keys_after, put_bytes
from functions.domain.drift.hourly import HourAggregate, HourRows, hour_of
from functions.observability import logger

AGGREGATE_FILE = "aggregate.json"


class S3AggregateStore:
    """Reads and writes hourly drift aggregates (see the module doc)."""

    def __init__(
        self, s3: object, bucket: str, prefix: str = "aggregates/drift", *, inline_rows: int | None = None
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.inline_rows = inline_rows

    def partition(self, model_name: str, hour: datetime) -> str:
        return f"{self.prefix}/{model_name}/dt={hour:%Y-%m-%d}/hour={hour:%H}/"

    def key(self, model_name: str, hour: datetime) -> str:
        return self.partition(model_name, hour_of(hour)) + AGGREGATE_FILE

    def hours(self, model_name: str, start: datetime, end: datetime) -> set[datetime]:
        """The hours from ``start``'s to ``end``'s that have an aggregate, from one listing (1000 keys a page).

        Raises:
            StorageError: the listing failed.
        """
        first, last = self.partition(model_name, hour_of(start)), self.partition(model_name, hour_of(end))
        found: set[datetime] = set()
        for key in self._keys_from(model_name, first):
            if key[: len(last)] > last:
                break
            if key.endswith("/" + AGGREGATE_FILE):
                found.add(partition_hour(key))
        return found

    def _keys_from(self, model_name: str, first: str) -> Iterator[str]:
        return keys_after(self._s3, self.bucket, f"{self.prefix}/{model_name}/", first.rstrip("/"))

    def get(self, model_name: str, hour: datetime) -> tuple[HourAggregate | None, str] | None:
        """The hour's aggregate and its ETag; None when there is none. An unreadable one comes back as
        ``(None, etag)``, so that its rebuild can replace it (If-Match).

        Raises:
            StorageError: the read failed.
        """
        found = get_bytes(self._s3, self.bucket, self.key(model_name, hour))
        if found is None:
            return None
        try:
            return HourAggregate.model_validate_json(found[0]), found[1]
        except ValidationError:
            return None, found[1]

    def get_rows(self, aggregate: HourAggregate) -> HourRows | None:
        """The outputs of the rows ``aggregate`` covers: inline, or from its rows object; None when that is gone
        (replaced meanwhile) or unreadable.

        Raises:
            StorageError: the read failed.
        """
        if aggregate.rows is not None or aggregate.rows_object is None:
            return aggregate.rows if aggregate.rows is not None else HourRows()
        found = get_bytes(self._s3, self.bucket, aggregate.rows_object)
        if found is None:
            return None
        try:
            return HourRows.model_validate_json(gzip.decompress(found[0]))
        except (ValidationError, OSError, EOFError, zlib.error):
            return None

    def put(self, aggregate: HourAggregate, rows: HourRows, etag: str | None) -> bool:
        """Write ``aggregate`` with ``rows`` (inline, or in a rows object written first), if the stored one is still
        the one read (``etag``; None: none). ``aggregate.rows_object`` names the rows object it replaces.

        Returns:
            True when written; False when another writer changed the hour first (nothing of ours is then
            referenced).

        Raises:
            StorageError: a write failed.
        """
        previous = aggregate.rows_object
        inline, new_rows = None, None
        limit = aggregate.sample_size if self.inline_rows is None else self.inline_rows
        if sum(len(r.row_keys) for r in rows.versions.values()) <= limit:
            inline = rows
        else:
            body = gzip.compress(rows.model_dump_json().encode(), compresslevel=5)
            digest = hashlib.sha256(body).hexdigest()[:20]
            new_rows = f"{self.partition(aggregate.model_name, aggregate.hour)}rows-{digest}.json.gz"
            put_bytes(self._s3, self.bucket, new_rows, body, content_type="application/gzip")
        doc = aggregate.model_copy(update={"rows": inline, "rows_object": new_rows})
        written = put_bytes(
            self._s3,
            self.bucket,
            self.key(aggregate.model_name, aggregate.hour),
            doc.model_dump_json().encode(),
            content_type="application/json",
            if_none_match=etag is None,
            if_match=etag,
        )
        if written is None:
            return False  # our rows object, if any, is left unreferenced: harmless, and never read
        if previous is not None and previous != doc.rows_object:
            self._delete(previous)
        return True

    def _delete(self, key: str) -> None:
        """Remove a replaced rows object; a failure is logged (the aggregate is saved; the object is left over)."""
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)  # type: ignore[attr-defined]
        except ClientError as exc:
            logger.warning("replaced drift rows object not deleted", extra={"key": key, "error": error_code(exc)})
        except BotoCoreError as exc:
            logger.warning("replaced drift rows object not deleted", extra={"key": key, "error": type(exc).__name__})
