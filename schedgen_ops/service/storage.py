"""Upload storage shared by api and workers: a directory (``file:///dir``) or S3 (``s3://bucket/prefix``).

Keys are job ids. Bytes are written once by the api and deleted by the worker after success or the
final failure (or by the reconciler's retention purge), never before a retry.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ServiceSettings


class StorageError(SchedgenError):
    """The upload store failed or is unreachable."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="storage_unavailable", hint="check SCHEDGEN_STORAGE_URL")


class Storage(Protocol):
    url: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def exists(self, key: str) -> bool: ...
    def check(self) -> None: ...


def _checked_key(key: str) -> str:
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"invalid storage key {key!r}")
    return key


class FileStorage:
    """Uploads as files in one directory (a volume shared by api and worker containers)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    def _path(self, key: str) -> Path:
        return self.root / (_checked_key(key) + ".pdf")

    def put(self, key: str, data: bytes) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".upload-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, self._path(key))
        except OSError as exc:
            raise StorageError(f"cannot write upload to {self.root}: {exc.strerror}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise KeyError(key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read upload from {self.root}: {exc.strerror}") from exc

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def check(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK):
            raise StorageError(f"upload directory {self.root} is missing or not writable")


class S3Storage:
    """Uploads as objects under ``prefix`` in an S3 bucket (MinIO or AWS)."""

    def __init__(self, bucket: str, prefix: str, client: Any, url: str) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client
        self.url = url

    def _key(self, key: str) -> str:
        key = _checked_key(key) + ".pdf"
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:  # botocore raises many unrelated types
            raise StorageError(f"cannot write upload to s3://{self.bucket}: {exc}") from exc

    def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
            return bytes(response["Body"].read())
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise KeyError(key) from exc
            raise StorageError(f"cannot read upload from s3://{self.bucket}: {exc}") from exc
        except Exception as exc:
            raise StorageError(f"cannot read upload from s3://{self.bucket}: {exc}") from exc

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise StorageError(f"cannot delete upload from s3://{self.bucket}: {exc}") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError:
            return False

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise StorageError(f"bucket s3://{self.bucket} is not reachable: {exc}") from exc


def open_storage(settings: ServiceSettings, *, timeout_s: float = 5.0) -> Storage:
    """The storage backend named by ``settings.storage_url``."""
    parsed = urlparse(settings.storage_url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise SchedgenError(
                f"SCHEDGEN_STORAGE_URL {settings.storage_url!r} has a host; use file:///absolute/dir",
                code="invalid_setting",
            )
        return FileStorage(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise SchedgenError(
                "SCHEDGEN_STORAGE_URL s3:// needs a bucket: s3://bucket/prefix", code="invalid_setting"
            )
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url or None,
            aws_access_key_id=settings.s3_access_key.get_secret_value() or None,
            aws_secret_access_key=settings.s3_secret_key.get_secret_value() or None,
            region_name=settings.s3_region,
            config=Config(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )
        return S3Storage(parsed.netloc, parsed.path, client, settings.storage_url)
    raise SchedgenError(
        f"SCHEDGEN_STORAGE_URL must be file:///dir or s3://bucket/prefix, not {settings.storage_url!r}",
        code="invalid_setting",
    )
