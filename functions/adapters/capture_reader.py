"""Reading captured traffic back, one object at a time, so memory stays bounded by one object."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pydantic_core
from botocore.exceptions import BotoCoreError, ClientError

from functions.adapters.s3 import get_bytes, list_keys
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
    """The ``dt=/hour=`` partitions that can hold records between ``start`` and ``end``."""
    out = []
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        out.append(f"{prefix.strip('/')}/{model_name}/dt={hour:%Y-%m-%d}/hour={hour:%H}/")
        hour += timedelta(hours=1)
    return out


class S3CaptureReader:
    """Streams captured requests of a time window from the data bucket."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "capture") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix

    def keys(self, model_name: str, start: datetime, end: datetime) -> list[str]:
        keys: list[str] = []
        for partition in hour_prefixes(self.prefix, model_name, start, end):
            keys.extend(list_keys(self._s3, self.bucket, partition))
        return sorted(keys)

    def iter_requests(
        self, model_name: str, start: datetime, end: datetime, model_version: int | None = None
    ) -> Iterator[CapturedRequest]:
        """Every captured request with ``start <= ts <= end`` (optionally of one model version)."""
        lo, hi = start.timestamp(), end.timestamp()
        for key in self.keys(model_name, start, end):
            for record in self._read(key):
                if not lo <= record["ts"] <= hi:
                    continue
                if model_version is not None and record["model_version"] != model_version:
                    continue
                yield CapturedRequest(
                    request_id=record["request_id"],
                    timestamp=record["ts"],
                    model_version=record["model_version"],
                    n_rows=record["n"],
                    features=record["features"],
                    predictions=record["predictions"],
                    probabilities=record.get("probabilities"),
                )

    def _read(self, key: str) -> Iterator[dict[str, Any]]:
        try:
            found = get_bytes(self._s3, self.bucket, key)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"reading capture object {key} failed") from exc
        if found is None:
            return
        try:
            data = gzip.decompress(found[0])
        except (OSError, EOFError) as exc:
            raise StorageError(f"capture object {key} is not valid gzip") from exc
        for line in data.splitlines():
            if line.strip():
                yield pydantic_core.from_json(line)
