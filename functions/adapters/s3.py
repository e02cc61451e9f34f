"""Small S3 helpers shared by the adapters: conditional writes and error translation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from functions.errors import StorageError

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
PRECONDITION_CODES = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_not_found(exc: ClientError) -> bool:
    return error_code(exc) in NOT_FOUND_CODES


def is_precondition_failed(exc: ClientError) -> bool:
    return error_code(exc) in PRECONDITION_CODES


def get_bytes(s3: Any, bucket: str, key: str) -> tuple[bytes, str] | None:
    """Object body and ETag, or None when the key does not exist."""
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
        return response["Body"].read(), response["ETag"]
    except ClientError as exc:
        if is_not_found(exc):
            return None
        raise StorageError(f"reading s3://{bucket}/{key} failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"reading s3://{bucket}/{key} failed: {type(exc).__name__}") from exc


def put_bytes(
    s3: Any,
    bucket: str,
    key: str,
    body: bytes,
    *,
    content_type: str = "application/octet-stream",
    if_none_match: bool = False,
    if_match: str | None = None,
) -> str | None:
    """Write an object, optionally only if absent or only if unchanged.

    Returns:
        The new ETag, or None when the precondition failed (someone else wrote first).

    Raises:
        StorageError: any other failure; the write did not happen as far as we know.
    """
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": content_type}
    if if_none_match:
        kwargs["IfNoneMatch"] = "*"
    if if_match is not None:
        kwargs["IfMatch"] = if_match
    try:
        return str(s3.put_object(**kwargs)["ETag"])
    except ClientError as exc:
        if is_precondition_failed(exc):
            return None
        raise StorageError(f"writing s3://{bucket}/{key} failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"writing s3://{bucket}/{key} failed: {type(exc).__name__}") from exc


def list_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Common prefixes one level below ``prefix`` (which must end with '/')."""
    out: list[str] = []
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            out.extend(p["Prefix"] for p in page.get("CommonPrefixes", []))
    except ClientError as exc:
        raise StorageError(f"listing s3://{bucket}/{prefix} failed: {error_code(exc)}") from exc
    return out


def keys_after(s3: Any, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[str]:
    """The keys under ``prefix`` (that sort after ``start_after``, if given), in key order; a page is asked for
    only when needed."""
    bounds = {"StartAfter": start_after} if start_after else {}
    try:
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix, **bounds):
            for entry in page.get("Contents", []):
                yield entry["Key"]
    except ClientError as exc:
        raise StorageError(f"listing s3://{bucket}/{prefix} failed: {error_code(exc)}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"listing s3://{bucket}/{prefix} failed: {type(exc).__name__}") from exc


def list_keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every key under ``prefix``."""
    return list(keys_after(s3, bucket, prefix))
