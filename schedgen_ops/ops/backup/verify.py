"""`schedgen backup verify`: prove a backup set restorable, in two tiers, and record the result.

First the manifest's signature (signing.py): a manifest this project's key did not sign is not acted
on, and not written to, unless the operator accepts it (``allow_unsigned``).
standard: manifest complete; every file's size and sha256; ``pg_restore --list``; a full read of the
archive whose per-table row counts must equal the manifest's; the Redis snapshot's structure and key
count; every tar read to the end.
deep: additionally restores the archive into a scratch database on the target's server, compares exact
row counts with the manifest and drops the scratch database.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypedDict, Unpack

from schedgen_ops import __version__
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import dbops
from schedgen_ops.ops.backup.archive import count_rows, table_of_contents
from schedgen_ops.ops.backup.catalog import BackupEntry, find_backup
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import (
    CONFIG_TAR,
    POSTGRES_DUMP,
    REDIS_RDB,
    UPLOADS_TAR,
    Check,
    Manifest,
    Verification,
    iso,
    read_manifest,
    utcnow,
    write_manifest,
)
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.redis_snapshot import check_rdb
from schedgen_ops.ops.backup.signing import SignatureState, SigningKey, authenticate, describe, sign
from schedgen_ops.ops.backup.sources import tar_member_count
from schedgen_ops.ops.backup.streaming import file_digest, run_checked, stream_from_file
from schedgen_ops.ops.backup.targets import Target
from schedgen_ops.ops.backup.tools import archive_tools, major_of


class VerifyOptions(TypedDict, total=False):
    """`verify_entry`'s optional keywords, which `verify_backup` passes on; their defaults live there."""

    allow_unsigned: bool
    deep: bool
    target: Target | None
    jobs: int
    reporter: Reporter | None


def verify_backup(
    directory: Path, backup_id: str | None = None, *, key: SigningKey, **options: Unpack[VerifyOptions]
) -> tuple[BackupEntry, Verification]:
    """Verify a backup under the directory lock and write the result into its manifest."""
    with backup_lock(directory, "verify"):
        entry = find_backup(directory, backup_id)
        return entry, verify_entry(entry, key=key, **options)


def verify_entry(
    entry: BackupEntry,
    *,
    key: SigningKey,
    allow_unsigned: bool = False,
    deep: bool = False,
    target: Target | None = None,
    jobs: int = 2,
    reporter: Reporter | None = None,
) -> Verification:
    """Run the checks on one set (the caller holds the lock) and record them in its manifest.

    A manifest that fails the signature check is neither acted on (no pg_restore of a dump whose
    checksums someone else chose) nor written. The recorded result is signed again when the manifest
    was ours, or when it was accepted with ``allow_unsigned`` and passed: the operator vouched for it.
    """
    reporter = reporter or Reporter(quiet=True)
    if deep and target is None:
        raise SchedgenError("--deep needs a database server to restore into", code="verify_no_target")
    started = time.monotonic()
    manifest = read_manifest(entry.path)
    checks: list[Check] = []

    def run(name: str, check: Callable[[], str]) -> bool:
        try:
            with reporter.step(f"verify: {name}"):
                detail = check()
            checks.append(Check(name=name, ok=True, detail=detail))
            return True
        except SchedgenError as exc:
            checks.append(Check(name=name, ok=False, detail=exc.one_line()))
            return False

    state: SignatureState | None = None
    try:
        state = authenticate(manifest, key, where=f"backup {entry.id}", allow_unsigned=allow_unsigned)
        checks.append(Check(name="manifest signature", ok=True, detail=describe(state, key)))
    except SchedgenError as exc:
        checks.append(Check(name="manifest signature", ok=False, detail=exc.one_line()))
    authentic = state is not None
    ok = authentic and run("manifest", lambda: _check_manifest(manifest))
    ok = authentic and run("checksums", lambda: _check_checksums(entry.path, manifest)) and ok
    if ok and manifest.file("postgres"):
        tools = archive_tools(major_of(manifest.tools.get("pg_dump", "")))
        ok = run(
            "pg_restore --list",
            lambda: f"{len(table_of_contents(tools, entry.path / POSTGRES_DUMP))} entries",
        )
        ok = ok and run("archive full read", lambda: _check_rows(tools, entry.path / POSTGRES_DUMP, manifest))
        if manifest.file("redis"):
            ok = run("redis snapshot", lambda: _check_redis(entry.path / REDIS_RDB, manifest)) and ok
        for kind, name in (("uploads", UPLOADS_TAR), ("config", CONFIG_TAR)):
            if manifest.file(kind):
                ok = (
                    run(f"{kind} archive", functools.partial(_check_tar, entry.path / name, manifest, kind))
                    and ok
                )
        if ok and deep:
            assert target is not None
            ok = run("deep: restore into a scratch database", lambda: _deep(entry, manifest, target, jobs))
    result = Verification(
        status="passed" if ok else "failed",
        level="deep" if deep else "standard",
        verified_at=iso(utcnow()),
        duration_s=round(time.monotonic() - started, 3),
        checks=checks,
        schedgen_version=__version__,
    )
    if not authentic:
        return result
    manifest.record_verification(result)
    if state == "valid" or result.status == "passed":
        if state != "valid":
            reporter.warn(
                f"backup {entry.id}: accepted a manifest that is {state} (--allow-unsigned) and signed it "
                "with this project's key"
            )
        sign(manifest, key)
    write_manifest(entry.path, manifest)
    entry.manifest = manifest
    return result


def _check_manifest(manifest: Manifest) -> str:
    if manifest.status != "complete":
        raise SchedgenError(f"manifest status is {manifest.status}", code="backup_incomplete")
    if manifest.file("postgres") is None:
        raise SchedgenError("the manifest lists no Postgres dump", code="backup_incomplete")
    return f"{len(manifest.files)} files"


def _check_checksums(path: Path, manifest: Manifest) -> str:
    bad: list[str] = []
    for entry in manifest.files:
        file = path / entry.path
        if not file.is_file():
            bad.append(f"{entry.path} missing")
            continue
        digest = file_digest(file)
        if digest.size != entry.size:
            bad.append(f"{entry.path} size {digest.size} != {entry.size}")
        elif digest.sha256 != entry.sha256:
            bad.append(f"{entry.path} sha256 mismatch")
    if bad:
        raise SchedgenError("; ".join(bad), code="backup_corrupt")
    return f"{len(manifest.files)} files match"


def _check_rows(tools: object, dump: Path, manifest: Manifest) -> str:
    from schedgen_ops.ops.backup.tools import PgTools

    assert isinstance(tools, PgTools)
    counts = count_rows(tools, dump)
    expected = manifest.postgres.tables if manifest.postgres else {}
    if counts != expected:
        raise SchedgenError(
            f"row counts in the archive differ from the manifest: {_diff(expected, counts)}",
            code="backup_corrupt",
        )
    return f"{sum(counts.values())} rows in {len(counts)} tables"


def _check_redis(rdb: Path, manifest: Manifest) -> str:
    keys = check_rdb(rdb)
    if keys is None:
        return "redis-check-rdb not installed: checksum only"
    expected = manifest.redis.keys if manifest.redis else None
    if expected is not None and keys != expected:
        raise SchedgenError(f"snapshot holds {keys} keys, manifest says {expected}", code="backup_corrupt")
    return f"{keys} keys"


def _check_tar(path: Path, manifest: Manifest, kind: str) -> str:
    count = tar_member_count(path)
    if kind == "uploads" and manifest.uploads is not None and count != manifest.uploads.objects:
        raise SchedgenError(
            f"{count} upload objects, manifest says {manifest.uploads.objects}", code="backup_corrupt"
        )
    if kind == "config" and manifest.config is not None and count != len(manifest.config.files):
        raise SchedgenError(
            f"{count} config files, manifest says {len(manifest.config.files)}", code="backup_corrupt"
        )
    return f"{count} files"


def _diff(expected: dict[str, int], actual: dict[str, int]) -> str:
    parts = []
    for name in sorted(set(expected) | set(actual)):
        if expected.get(name) != actual.get(name):
            parts.append(f"{name}: expected {expected.get(name)}, found {actual.get(name)}")
    return "; ".join(parts[:10])


def _deep(entry: BackupEntry, manifest: Manifest, target: Target, jobs: int) -> str:
    scratch = f"schedgen_verify_{entry.id.lower().replace('-', '_')}_{os.getpid()}"
    dbops.drop_database(target, scratch)
    dbops.create_database(target, scratch)
    try:
        dump = entry.path / POSTGRES_DUMP
        command = target.pg_restore(dump, jobs=jobs, clean=False, dbname=scratch)
        if target.restore_from_stdin:
            stream_from_file(command.argv, dump, what="pg_restore into the scratch database", env=command.env)
        else:
            run_checked(command.argv, what="pg_restore into the scratch database", env=command.env)
        counts = dbops.table_counts(target, dbname=scratch)
    finally:
        dbops.drop_database(target, scratch)
    expected = manifest.postgres.tables if manifest.postgres else {}
    restored = {name: counts.get(name, 0) for name in expected}
    extra = {name: n for name, n in counts.items() if name not in expected and n}
    if restored != expected or extra:
        raise SchedgenError(
            f"restored row counts differ from the manifest: {_diff(expected, {**restored, **extra})}",
            code="backup_corrupt",
        )
    rows = sum(restored.values())
    return f"restored {rows} rows in {len(restored)} tables into {scratch}, counts equal; dropped"
