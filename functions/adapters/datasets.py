"""Training datasets in the data bucket."""

from __future__ import annotations

from typing import Any

from functions.adapters.s3 import get_bytes, put_bytes
from functions.domain.artifacts import sha256_hex
from functions.errors import StorageError, TrainingError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise TrainingError(f"dataset must be an s3://bucket/key URI, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class S3DatasetStore:
    """Reads and uploads CSV datasets; only the configured data bucket is accepted."""

    def __init__(self, s3: Any, bucket: str, prefix: str = "datasets") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def upload(self, name: str, body: bytes) -> str:
        key = f"{self.prefix}/{name}"
        if put_bytes(self._s3, self.bucket, key, body, content_type="text/csv") is None:
            raise StorageError(f"upload of {key} was refused")
        return f"s3://{self.bucket}/{key}"

    def read(self, uri: str) -> tuple[str, str]:
        """The CSV text at ``uri`` and its SHA-256."""
        bucket, key = parse_s3_uri(uri)
        if bucket != self.bucket:
            raise TrainingError(f"datasets are read from s3://{self.bucket} only, not {bucket}")
        found = get_bytes(self._s3, bucket, key)
        if found is None:
            raise TrainingError(f"dataset {uri} does not exist")
        data = found[0]
        try:
            return data.decode("utf-8"), sha256_hex(data)
        except UnicodeDecodeError as exc:
            raise TrainingError(f"dataset {uri} is not UTF-8 text") from exc
