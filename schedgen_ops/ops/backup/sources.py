"""Backup sources beside the databases: pending upload objects and the project's configuration.

Uploads are the bytes of jobs not yet parsed (the service deletes them after success), from a
``file://`` directory or an ``s3://`` bucket (MinIO). Configuration is schedgen.yaml plus the rendered
tree; secret files are left out unless explicitly asked for.
"""

from __future__ import annotations

import fnmatch
import io
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import SECRETS_FILE, ProjectLayout
from schedgen_ops.ops.backup.streaming import ProgressFn

#: Paths (relative to the project) that may hold secrets: only archived with --include-secrets.
SECRET_PATTERNS = ("*secrets.env", "*.env", "*secret*", "*.key", "*.pem", "*password*", "*token*")
CONFIG_FILES = ("schedgen.yaml",)
CONFIG_DIRS = ("deploy",)


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3 or MinIO (empty values fall back to boto3's own credential chain)."""

    endpoint_url: str = ""
    access_key: str = ""
    secret_key: str = ""
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3

        kwargs: dict[str, Any] = {"region_name": self.region or "us-east-1"}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.access_key:
            kwargs["aws_access_key_id"] = self.access_key
            kwargs["aws_secret_access_key"] = self.secret_key
        return boto3.client("s3", **kwargs)


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (bucket, "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise SchedgenError(f"not an s3:// URL: {url!r}", code="bad_s3_url", hint="use s3://bucket/prefix")
    return parts.netloc, parts.path.strip("/")


def is_secret_path(relative: str) -> bool:
    name = relative.lower()
    return any(
        fnmatch.fnmatch(name, pattern) or fnmatch.fnmatch(Path(name).name, pattern)
        for pattern in SECRET_PATTERNS
    )


def archive_uploads(
    storage_url: str, dest: Path, s3: S3Settings, progress: ProgressFn | None = None
) -> tuple[int, int]:
    """Write every stored upload object into the tar ``dest``; return (objects, bytes)."""
    parts = urlsplit(storage_url)
    if parts.scheme == "file":
        root = Path(unquote(parts.path))
        if not root.is_dir():
            raise SchedgenError(
                f"upload storage directory {root} does not exist",
                code="storage_missing",
                hint="check SCHEDGEN_STORAGE_URL",
            )
        return _tar_directory(root, dest, progress)
    if parts.scheme == "s3":
        return _tar_bucket(storage_url, dest, s3, progress)
    raise SchedgenError(
        f"unsupported upload storage URL {storage_url!r}",
        code="bad_storage_url",
        hint="use file:///dir or s3://bucket",
    )


def _tar_directory(root: Path, dest: Path, progress: ProgressFn | None) -> tuple[int, int]:
    objects = total = 0
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            size = path.stat().st_size
            tar.add(path, arcname=path.relative_to(root).as_posix(), recursive=False)
            objects += 1
            total += size
            if progress:
                progress(size)
    return objects, total


def _iter_objects(client: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"{prefix}/" if prefix else ""):
        yield from page.get("Contents", [])


def _tar_bucket(url: str, dest: Path, s3: S3Settings, progress: ProgressFn | None) -> tuple[int, int]:
    bucket, prefix = split_s3_url(url)
    client = s3.client()
    objects = total = 0
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for obj in _iter_objects(client, bucket, prefix):
            key = obj["Key"]
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            info = tarfile.TarInfo(key[len(prefix) + 1 :] if prefix else key)
            info.size = int(obj["Size"])
            tar.addfile(info, body)
            objects += 1
            total += info.size
            if progress:
                progress(info.size)
    return objects, total


def restore_uploads(tar_path: Path, storage_url: str, s3: S3Settings) -> int:
    """Put archived upload objects back into storage (existing objects of the same name are replaced)."""
    parts = urlsplit(storage_url)
    count = 0
    with tarfile.open(tar_path, "r") as tar:
        if parts.scheme == "file":
            root = Path(unquote(parts.path))
            root.mkdir(parents=True, exist_ok=True)
            members = [m for m in tar.getmembers() if m.isfile()]
            tar.extractall(root, members=members, filter="data")
            return len(members)
        bucket, prefix = split_s3_url(storage_url)
        client = s3.client()
        for member in tar.getmembers():
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            key = f"{prefix}/{member.name}" if prefix else member.name
            client.put_object(Bucket=bucket, Key=key, Body=handle.read())
            count += 1
    return count


def archive_config(project_dir: Path, dest: Path, *, include_secrets: bool) -> list[str]:
    """Tar schedgen.yaml and the rendered tree (secrets only when asked); return the archived paths."""
    chosen: list[Path] = []
    for name in CONFIG_FILES:
        if (project_dir / name).is_file():
            chosen.append(project_dir / name)
    for name in CONFIG_DIRS:
        root = project_dir / name
        if root.is_dir():
            chosen.extend(sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()))
    names: list[str] = []
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in chosen:
            relative = path.relative_to(project_dir).as_posix()
            if not include_secrets and is_secret_path(relative):
                continue
            tar.add(path, arcname=relative, recursive=False)
            names.append(relative)
        secrets = ProjectLayout.of(project_dir).secrets
        if include_secrets and secrets.is_file():
            tar.add(secrets, arcname=SECRETS_FILE.as_posix(), recursive=False)
            names.append(SECRETS_FILE.as_posix())
    return names


def tar_contents(path: Path) -> tuple[int, int]:
    """(files, bytes) in a tar written by ``tar -cf -`` inside a container."""
    try:
        with tarfile.open(path, "r") as tar:
            files = [m for m in tar.getmembers() if m.isfile()]
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SchedgenError(f"{path.name} is unreadable: {exc}", code="backup_corrupt") from exc
    return len(files), sum(m.size for m in files)


def tar_member_count(path: Path) -> int:
    """Number of files in a tar (a full read: a truncated tar raises)."""
    try:
        with tarfile.open(path, "r") as tar:
            count = 0
            for member in tar:
                if member.isfile():
                    handle = tar.extractfile(member)
                    assert handle is not None
                    while handle.read(io.DEFAULT_BUFFER_SIZE * 64):
                        pass
                    count += 1
            return count
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise SchedgenError(f"{path.name} is unreadable: {exc}", code="backup_corrupt") from exc
