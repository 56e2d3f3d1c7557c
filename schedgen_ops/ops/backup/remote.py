"""Off-site copies: `backup push ID s3://bucket/prefix` and `backup pull`.

A pushed set lives under prefix/ID/; manifest.json is uploaded last, so a set without a manifest in
the bucket is an interrupted push. Pull checks the downloaded manifest first (a model that only names
the toolkit's own file names, the id asked for, and this project's signature), before it downloads
anything; then it downloads into ID.partial, checks every size and sha256 against the manifest and only
then renames it into place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.catalog import find_backup
from schedgen_ops.ops.backup.create import PARTIAL_SUFFIX
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import (
    DIR_MODE,
    MANIFEST,
    Manifest,
    check_backup_id,
    read_manifest,
    write_manifest,
)
from schedgen_ops.ops.backup.private import seal
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.signing import SigningKey, authenticate, sign
from schedgen_ops.ops.backup.sources import S3Settings, split_s3_url
from schedgen_ops.ops.backup.streaming import file_digest


def _key(prefix: str, backup_id: str, name: str) -> str:
    return "/".join(part for part in (prefix, backup_id, name) if part)


def push_backup(
    directory: Path,
    backup_id: str | None,
    url: str,
    s3: S3Settings,
    reporter: Reporter | None = None,
    *,
    key: SigningKey,
) -> Manifest:
    """Upload a complete, checksum-clean set this project signed; return its manifest."""
    reporter = reporter or Reporter(quiet=True)
    bucket, prefix = split_s3_url(url)
    with backup_lock(directory, "push"):
        entry = find_backup(directory, backup_id)
        manifest = read_manifest(entry.path)
        try:
            authenticate(manifest, key, where=f"backup {entry.id}")
        except SchedgenError as exc:
            raise SchedgenError(
                f"{exc.message}; refusing to ship it off-site",
                code=exc.code,
                hint=f"`schedgen backup verify {entry.id} --allow-unsigned` signs it once it passes, "
                "if you know where it came from",
            ) from exc
        if manifest.verification is not None and manifest.verification.status == "failed":
            raise SchedgenError(
                f"backup {entry.id} failed verification; refusing to ship it off-site",
                code="backup_failed_verification",
                hint="push a backup that passes `schedgen backup verify`",
            )
        client = s3.client()
        try:
            for item in manifest.files:
                path = entry.path / item.path
                if file_digest(path).sha256 != item.sha256:
                    raise SchedgenError(f"{item.path} does not match its checksum", code="backup_corrupt")
                with reporter.step(f"push {item.path}", total=item.size):
                    client.upload_file(str(path), bucket, _key(prefix, entry.id, item.path))
            client.upload_file(str(entry.path / MANIFEST), bucket, _key(prefix, entry.id, MANIFEST))
        except SchedgenError:
            raise
        except Exception as exc:  # botocore errors: one line with the fix
            raise SchedgenError(
                f"push to {url} failed: {exc}", code="s3_failed", hint="check the bucket and credentials"
            ) from exc
        return manifest


def pull_backup(
    directory: Path,
    backup_id: str,
    url: str,
    s3: S3Settings,
    reporter: Reporter | None = None,
    *,
    key: SigningKey,
    allow_unsigned: bool = False,
) -> Manifest:
    """Download prefix/ID/ into DIR/ID after checking its manifest and every file against it.

    With ``allow_unsigned`` a manifest this project did not sign is accepted (paths, id and checksums
    are still checked) and signed with this project's key: the operator vouches for the set.
    """
    import json

    from pydantic import ValidationError

    reporter = reporter or Reporter(quiet=True)
    bucket, prefix = split_s3_url(url)
    check_backup_id(backup_id)
    with backup_lock(directory, "pull"):  # the lock makes the directory private (0700)
        final = directory / backup_id
        if final.exists() or final.is_symlink():
            raise SchedgenError(
                f"{final} already exists", code="backup_exists", hint="remove it or pick another id"
            )
        work = directory / (backup_id + PARTIAL_SUFFIX)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(mode=DIR_MODE)
        os.chmod(work, DIR_MODE)
        client = s3.client()
        try:
            try:
                body = client.get_object(Bucket=bucket, Key=_key(prefix, backup_id, MANIFEST))["Body"].read()
            except Exception as exc:
                raise SchedgenError(
                    f"no manifest for backup {backup_id} under {url}: {exc}",
                    code="backup_not_found",
                    hint="the push may have been interrupted; list the bucket",
                ) from exc
            try:
                manifest = Manifest.model_validate(json.loads(body))
            except (ValueError, ValidationError) as exc:
                first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                raise SchedgenError(
                    f"the manifest of backup {backup_id} under {url} is not one schedgen wrote: {first}",
                    code="backup_manifest_invalid",
                    hint="nothing was written; check who can write to that bucket",
                ) from exc
            if manifest.id != backup_id:
                raise SchedgenError(
                    f"the manifest under {backup_id} names backup {manifest.id!r}",
                    code="backup_manifest_invalid",
                    hint="nothing was written; check who can write to that bucket",
                )
            state = authenticate(
                manifest, key, where=f"backup {backup_id} under {url}", allow_unsigned=allow_unsigned
            )
            for item in manifest.files:
                path = work / item.path
                with reporter.step(f"pull {item.path}", total=item.size):
                    client.download_file(bucket, _key(prefix, backup_id, item.path), str(path))
                digest = file_digest(path)
                if digest.size != item.size or digest.sha256 != item.sha256:
                    raise SchedgenError(
                        f"pulled {item.path} does not match its checksum", code="backup_corrupt"
                    )
            if state != "valid":
                reporter.warn(
                    f"backup {backup_id}: accepted a manifest that is {state} (--allow-unsigned) and "
                    "signed it with this project's key"
                )
                sign(manifest, key)
            write_manifest(work, manifest)
            seal(work)
            os.replace(work, final)
            return read_manifest(final)
        except SchedgenError:
            raise
        except Exception as exc:
            raise SchedgenError(
                f"pull from {url} failed: {exc}", code="s3_failed", hint="check the bucket and credentials"
            ) from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
