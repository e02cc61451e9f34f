"""Reading captured traffic back, one object at a time, so memory stays bounded by one object.

A window's keys come from one listing of the model's capture prefix that starts just before the
window's first hour partition and stops at the first key past its last: the LIST requests grow with
the objects in the window (up to 1000 keys a page), not with its hours or days.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pydantic_core
from botocore.exceptions import BotoCoreError, ClientError

from functions.adapters.s3 import get_bytes, keys_after
from functions.adapters.skipped import SkippedRecords
from functions.errors import StorageError


@dataclass
class CapturedRequest:
    """One captured request (one JSON line), in columnar form."""

    request_id: str
    timestamp: float
    model_version: int
    n_rows: int
    features: dict[str, list[Any]]
    predictions: list[Any]
    probabilities: list[list[float]] | None

    @property
    def row_ids(self) -> list[str]:
        """The ids ``predict`` answered for each row (``<request_id>-<i>``), as outcomes refer to them."""
        return [f"{self.request_id}-{i}" for i in range(self.n_rows)]

    def column(self, name: str, dtype: Any = np.float64) -> np.ndarray:
        return np.asarray(self.features[name], dtype=dtype)


def hour_prefixes(prefix: str, model_name: str, start: datetime, end: datetime) -> list[str]:
    """The ``dt=/hour=`` partitions that can hold records between ``start`` and ``end``, in key order."""
    out = []
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        out.append(f"{prefix.strip('/')}/{model_name}/dt={hour:%Y-%m-%d}/hour={hour:%H}/")
        hour += timedelta(hours=1)
    return out


def partition_hour(key: str) -> datetime:
    """The hour of the ``dt=YYYY-MM-DD/hour=HH/`` partition holding the capture object ``key``."""
    day, hour = key.rsplit("/", 3)[1:3]
    return datetime.strptime(f"{day.removeprefix('dt=')} {hour.removeprefix('hour=')}", "%Y-%m-%d %H").replace(
        tzinfo=UTC
    )


class S3CaptureReader:
    """Streams captured requests of a time window from the data bucket."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "capture") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def keys(self, model_name: str, start: datetime, end: datetime) -> list[str]:
        """Every key in the hour partitions of ``[start, end]`` (those ``hour_prefixes`` names), sorted.

        Partition names sort in time order (``dt=YYYY-MM-DD/hour=HH/``), so one paginated listing of
        the model's prefix, starting after the name of the first hour and ending at the first key
        past the last hour, returns exactly the keys that listing each hour would, in far fewer
        requests: about one per 1000 keys of the window.

        Raises:
            StorageError: the listing failed.
        """
        partitions = hour_prefixes(self.prefix, model_name, start, end)
        if not partitions:
            return []
        wanted, width, last = set(partitions), len(partitions[0]), partitions[-1]
        root = f"{self.prefix.strip('/')}/{model_name}/"
        keys: list[str] = []
        for key in keys_after(self._s3, self.bucket, root, partitions[0].rstrip("/")):
            partition = key[:width]
            if partition > last:
                break  # every later key sorts after this one, so after the window too
            if partition in wanted:
                keys.append(key)
        return keys

    def keys_by_hour(self, model_name: str, start: datetime, end: datetime) -> dict[datetime, list[str]]:
        """:meth:`keys`, grouped by the hour partition that holds them (in time order).

        Raises:
            StorageError: the listing failed.
        """
        grouped: dict[datetime, list[str]] = {}
        for key in self.keys(model_name, start, end):
            grouped.setdefault(partition_hour(key), []).append(key)
        return grouped

    def iter_requests(
        self,
        model_name: str,
        start: datetime,
        end: datetime,
        model_version: int | None = None,
        skipped: SkippedRecords | None = None,
    ) -> Iterator[CapturedRequest]:
        """Every captured request with ``start <= ts <= end`` (optionally of one model version).

        A line that is not a well-formed capture record, or an object that is not gzip, is skipped and
        counted in ``skipped``; a failed read raises ``StorageError``.
        """
        keys = self.keys(model_name, start, end)
        for request in self.read_keys(keys, start, end, skipped=skipped):
            if model_version is None or request.model_version == model_version:
                yield request

    def read_keys(
        self,
        keys: Iterable[str],
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        skipped: SkippedRecords | None = None,
    ) -> Iterator[CapturedRequest]:
        """The captured requests of the objects ``keys``, in order; only those with ``start <= ts <= end`` when given.

        Corrupt lines and objects are skipped and counted in ``skipped``; a failed read raises ``StorageError``.
        """
        skipped = skipped if skipped is not None else SkippedRecords()
        lo = start.timestamp() if start is not None else float("-inf")
        hi = end.timestamp() if end is not None else float("inf")
        for key in keys:
            for number, record in self._read(key, skipped):
                request = _request(record)
                if isinstance(request, str):
                    skipped.skip("capture", f"{key} line {number}", request)
                    continue
                if lo <= request.timestamp <= hi:
                    yield request

    def _read(self, key: str, skipped: SkippedRecords) -> Iterator[tuple[int, Any]]:
        try:
            found = get_bytes(self._s3, self.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"reading capture object {key} failed") from exc
        if found is None:
            return
        try:
            data = gzip.decompress(found[0])
        except (OSError, EOFError):
            skipped.skip("capture", key, "not a gzip object")
            return
        for number, line in enumerate(data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, pydantic_core.from_json(line)
            except ValueError:
                skipped.skip("capture", f"{key} line {number}", "not JSON")


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _columns_of(value: Any, n: Any) -> bool:
    return type(value) is dict and all(type(c) is list and len(c) == n for c in value.values())


def _list_of(value: Any, n: Any) -> bool:
    return type(value) is list and len(value) == n


# What a capture line must be, checked in order; the first failed check is the reason it is skipped.
_CHECKS: tuple[tuple[Callable[[dict[str, Any]], bool], str], ...] = (
    (lambda r: type(r.get("request_id")) is str and _is_number(r.get("ts")), "request_id or ts missing or mistyped"),
    (
        lambda r: type(r.get("model_version")) is int and type(r.get("n")) is int and r["n"] >= 0,
        "bad model_version or n",
    ),
    (lambda r: _columns_of(r.get("features"), r["n"]), "features is not an object of n-value columns"),
    (lambda r: _list_of(r.get("predictions"), r["n"]), "predictions is not a list of n values"),
    (lambda r: r.get("probabilities") is None or _list_of(r["probabilities"], r["n"]), "bad probabilities"),
)


def _request(record: Any) -> CapturedRequest | str:
    """The captured request a parsed line holds, or why it is not one."""
    if type(record) is not dict:
        return "not a JSON object"
    for check, reason in _CHECKS:
        if not check(record):
            return reason
    return CapturedRequest(
        request_id=record["request_id"],
        timestamp=record["ts"],
        model_version=record["model_version"],
        n_rows=record["n"],
        features=record["features"],
        predictions=record["predictions"],
        probabilities=record.get("probabilities"),
    )
