"""Training datasets in the data bucket."""

from __future__ import annotations

from typing import Any

from functions.adapters.s3 import get_bytes, put_bytes
from functions.domain.artifacts import sha256_hex
from functions.errors import TrainingError


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://") or "/" not in uri[5:]:
        raise TrainingError(f"dataset must be an s3://bucket/key URI, got {uri!r}")
    bucket, key = uri[5:].split("/", 1)
    return bucket, key


class S3DatasetStore:
    """Reads and uploads CSV datasets; only the configured data bucket is accepted.

    A dataset is stored under its content: ``<prefix>/sha256=<hex>/<file name>``, written once
    (``If-None-Match``). Uploading any file under any name never changes an object a model was
    trained on, and ``read`` with the hash a card recorded refuses an object whose bytes differ
    (one stored under an older, name-only key and overwritten since, say).
    """

    def __init__(self, s3: Any, bucket: str, prefix: str = "datasets") -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def key_for(self, name: str, body: bytes) -> str:
        file_name = name.replace("\\", "/").rsplit("/", 1)[-1] or "dataset.csv"
        return f"{self.prefix}/sha256={sha256_hex(body)}/{file_name}"

    def upload(self, name: str, body: bytes) -> str:
        """Store ``body`` under its SHA-256 (again is a no-op: the same key holds the same bytes)."""
        key = self.key_for(name, body)
        put_bytes(self._s3, self.bucket, key, body, content_type="text/csv", if_none_match=True)
        return f"s3://{self.bucket}/{key}"

    def read(self, uri: str, expected_sha256: str | None = None) -> tuple[str, str]:
        """The CSV text at ``uri`` and its SHA-256.

        Raises:
            TrainingError: the object is missing, not UTF-8, outside the data bucket, or (with
                ``expected_sha256``) not the bytes a model was trained on.
        """
        bucket, key = parse_s3_uri(uri)
        if bucket != self.bucket:
            raise TrainingError(f"datasets are read from s3://{self.bucket} only, not {bucket}")
        found = get_bytes(self._s3, bucket, key)
        if found is None:
            raise TrainingError(f"dataset {uri} does not exist")
        data = found[0]
        digest = sha256_hex(data)
        if expected_sha256 is not None and digest != expected_sha256:
            raise TrainingError(
                f"dataset {uri} is not the data the model was trained on: its SHA-256 is {digest[:12]}..., the"
                f" card records {expected_sha256[:12]}... (the object was replaced); nothing is trained on it"
            )
        try:
            return data.decode("utf-8"), digest
        except UnicodeDecodeError as exc:
            raise TrainingError(f"dataset {uri} is not UTF-8 text") from exc
