"""`schedgen backup`: write one complete, self-describing backup set.

DIR/<UTC timestamp>.partial/ is filled step by step and renamed to DIR/<timestamp>/ only when every
step succeeded and manifest.json is written; a failed run is renamed to <timestamp>.failed with the
error in its manifest, so nothing incomplete ever looks like a backup. Every manifest written is
signed with the project's key (signing.py); the set's files are 0600 and its directory 0700.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from schedgen_ops import __version__
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.archive import count_rows
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import (
    CONFIG_TAR,
    DIR_MODE,
    POSTGRES_DUMP,
    POSTGRES_GLOBALS,
    REDIS_RDB,
    UPLOADS_TAR,
    ConfigInfo,
    FileEntry,
    Manifest,
    PostgresInfo,
    RedisInfo,
    UploadsInfo,
    iso,
    utcnow,
    write_manifest,
)
from schedgen_ops.ops.backup.private import seal
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.redis_snapshot import check_rdb
from schedgen_ops.ops.backup.signing import SigningKey, sign
from schedgen_ops.ops.backup.sources import S3Settings, archive_config, archive_uploads, tar_contents
from schedgen_ops.ops.backup.streaming import file_digest, stream_to_file
from schedgen_ops.ops.backup.targets import Command, Target
from schedgen_ops.ops.backup.tools import archive_tools, major_of

PARTIAL_SUFFIX = ".partial"
FAILED_SUFFIX = ".failed"


@dataclass
class BackupRequest:
    """Everything one backup run needs."""

    target: Target
    directory: Path
    project_dir: Path | None = None
    profile: str | None = None
    storage_url: str | None = None
    s3: S3Settings = field(default_factory=S3Settings)
    include_secrets: bool = False
    reason: str = "manual"
    #: Signs the manifest; None writes an unsigned set (which pull, verify and restore then refuse).
    key: SigningKey | None = None
    #: The deployment's name, recorded so restore can refuse a set of another deployment.
    project_name: str | None = None


def new_backup_id(directory: Path) -> str:
    """A UTC timestamp id, unique in ``directory`` (a suffix is added within the same second)."""
    base = utcnow().strftime("%Y%m%dT%H%M%SZ")
    candidate, n = base, 1
    while any((directory / (candidate + suffix)).exists() for suffix in ("", PARTIAL_SUFFIX, FAILED_SUFFIX)):
        candidate = f"{base}-{n}"
        n += 1
    return candidate


def create_backup(request: BackupRequest, reporter: Reporter | None = None) -> Manifest:
    """Run one backup under the directory lock; return the complete manifest or raise."""
    reporter = reporter or Reporter(quiet=True)
    directory = request.directory
    with backup_lock(directory, "backup"):
        return _create_locked(request, reporter)


def _create_locked(request: BackupRequest, reporter: Reporter) -> Manifest:
    directory = request.directory
    backup_id = new_backup_id(directory)  # the caller's backup_lock made the directory private
    work = directory / (backup_id + PARTIAL_SUFFIX)
    work.mkdir(mode=DIR_MODE)
    os.chmod(work, DIR_MODE)
    started = utcnow()
    clock = time.monotonic()
    manifest = Manifest(
        id=backup_id,
        status="running",
        reason=request.reason,
        target=request.target.name,
        profile=request.profile,
        project=str(request.project_dir) if request.project_dir else None,
        project_name=request.project_name,
        host=socket.gethostname(),
        started_at=iso(started),
        tools={"schedgen": __version__},
    )
    _write(work, manifest, request.key)
    try:
        _fill(request, manifest, work, reporter)
    except BaseException as exc:
        manifest.status = "failed"
        manifest.error = exc.one_line() if isinstance(exc, SchedgenError) else f"{type(exc).__name__}: {exc}"
        manifest.finished_at = iso(utcnow())
        manifest.duration_s = round(time.monotonic() - clock, 3)
        _write(work, manifest, request.key)
        seal(work)
        os.replace(work, directory / (backup_id + FAILED_SUFFIX))
        raise
    manifest.status = "complete"
    manifest.finished_at = iso(utcnow())
    manifest.duration_s = round(time.monotonic() - clock, 3)
    _write(work, manifest, request.key)
    seal(work)
    _fsync_dir(work)
    os.replace(work, directory / backup_id)
    _fsync_dir(directory)
    return manifest


def _write(work: Path, manifest: Manifest, key: SigningKey | None) -> None:
    if key is not None:
        sign(manifest, key)
    write_manifest(work, manifest)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _capture(
    reporter: Reporter, step: str, command: Command, work: Path, name: str, kind: str, what: str
) -> FileEntry:
    """``command``'s output as the set's file ``name``, checksummed as it streams in."""
    with reporter.step(step) as advance:
        digest = stream_to_file(command.argv, work / name, what=what, env=command.env, progress=advance)
    return FileEntry(path=name, kind=kind, size=digest.size, sha256=digest.sha256)


def _fill(request: BackupRequest, manifest: Manifest, work: Path, reporter: Reporter) -> None:
    target = request.target
    version_num, version = target.postgres_version()
    pg_dump_version = target.pg_dump_version()
    manifest.tools["pg_dump"] = pg_dump_version
    reporter.note(f"backup {manifest.id}: {target.name} target, Postgres {version} -> {work.parent}")

    dump = work / POSTGRES_DUMP
    manifest.files.append(
        _capture(
            reporter, "postgres: pg_dump -Fc", target.pg_dump(), work, POSTGRES_DUMP, "postgres", "pg_dump"
        )
    )
    globals_command = target.pg_dumpall_globals(role_passwords=request.include_secrets)
    what = "pg_dumpall --globals-only"
    manifest.files.append(
        _capture(
            reporter, f"postgres: {what}", globals_command, work, POSTGRES_GLOBALS, "postgres-globals", what
        )
    )

    tools = archive_tools(major_of(pg_dump_version))
    with reporter.step("postgres: reading the archive back (row counts)") as advance:
        tables = count_rows(tools, dump, progress=advance)
    manifest.postgres = PostgresInfo(
        database=_database_name(target),
        server_version=version,
        server_version_num=version_num,
        tables=tables,
        rows_total=sum(tables.values()),
    )

    rdb_command = target.redis_rdb()
    if rdb_command is not None:
        redis_version = target.redis_version()
        what = "redis-cli --rdb"
        manifest.files.append(
            _capture(reporter, f"redis: snapshot ({what})", rdb_command, work, REDIS_RDB, "redis", what)
        )
        manifest.redis = RedisInfo(server_version=redis_version, keys=check_rdb(work / REDIS_RDB))
        if target.name == "local":  # elsewhere redis-cli runs inside the container
            manifest.tools["redis-cli"] = _redis_cli_version()

    uploads_command = target.uploads_archive()
    if uploads_command is not None:
        with reporter.step("uploads: pending objects (tar inside the stack)") as advance:
            digest = stream_to_file(
                uploads_command.argv, work / UPLOADS_TAR, what="tar of the uploads", progress=advance
            )
        objects, size = tar_contents(work / UPLOADS_TAR)
        manifest.files.append(
            FileEntry(path=UPLOADS_TAR, kind="uploads", size=digest.size, sha256=digest.sha256)
        )
        manifest.uploads = UploadsInfo(source=f"{target.name}: uploads volume", objects=objects, bytes=size)
    elif request.storage_url:
        with reporter.step("uploads: pending objects") as advance:
            objects, size = archive_uploads(request.storage_url, work / UPLOADS_TAR, request.s3, advance)
        digest = file_digest(work / UPLOADS_TAR)
        manifest.files.append(
            FileEntry(path=UPLOADS_TAR, kind="uploads", size=digest.size, sha256=digest.sha256)
        )
        manifest.uploads = UploadsInfo(source=_redact_url(request.storage_url), objects=objects, bytes=size)

    if request.project_dir is not None:
        if request.include_secrets:
            reporter.note(
                "warning: --include-secrets: this backup set contains secrets (secrets.env, role passwords); "
                "store and ship it like the secrets themselves"
            )
        names = archive_config(
            request.project_dir, work / CONFIG_TAR, include_secrets=request.include_secrets
        )
        digest = file_digest(work / CONFIG_TAR)
        manifest.files.append(
            FileEntry(path=CONFIG_TAR, kind="config", size=digest.size, sha256=digest.sha256)
        )
        manifest.config = ConfigInfo(files=names, secrets_included=request.include_secrets)


def _database_name(target: Target) -> str:
    conn = getattr(target, "conn", None)
    if conn is not None:
        return str(conn.dbname)
    return str(getattr(target, "pg_database", ""))


def _redis_cli_version() -> str:
    import subprocess

    binary = shutil.which("redis-cli")
    if binary is None:
        return ""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, f"{parts.username}:***@{host}", parts.path, "", ""))
