"""Off-site copies: `backup push ID s3://bucket/prefix` and `backup pull`.

A pushed set lives under prefix/ID/; manifest.json is uploaded last, so a set without a manifest in
the bucket is an interrupted push. Pull downloads into ID.partial, checks every size and sha256 against
the manifest and only then renames it into place.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.catalog import find_backup
from schedgen_ops.ops.backup.create import PARTIAL_SUFFIX
from schedgen_ops.ops.backup.lock import backup_lock
from schedgen_ops.ops.backup.manifest import BACKUP_ID_RE, MANIFEST, Manifest, read_manifest
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.sources import S3Settings, split_s3_url
from schedgen_ops.ops.backup.streaming import file_digest


def _key(prefix: str, backup_id: str, name: str) -> str:
    return "/".join(part for part in (prefix, backup_id, name) if part)


def push_backup(
    directory: Path, backup_id: str | None, url: str, s3: S3Settings, reporter: Reporter | None = None
) -> Manifest:
    """Upload a complete, checksum-clean set; return its manifest."""
    reporter = reporter or Reporter(quiet=True)
    bucket, prefix = split_s3_url(url)
    with backup_lock(directory, "push"):
        entry = find_backup(directory, backup_id)
        manifest = read_manifest(entry.path)
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
    directory: Path, backup_id: str, url: str, s3: S3Settings, reporter: Reporter | None = None
) -> Manifest:
    """Download prefix/ID/ into DIR/ID after checking every file against the pulled manifest."""
    import json

    from pydantic import ValidationError

    reporter = reporter or Reporter(quiet=True)
    bucket, prefix = split_s3_url(url)
    if not BACKUP_ID_RE.match(backup_id):
        raise SchedgenError(
            f"{backup_id!r} is not a backup id",
            code="usage",
            hint="ids look like 20261128T023000Z (see `schedgen backup list` where it was taken)",
            exit_code=2,
        )
    with backup_lock(directory, "pull"):
        final = directory / backup_id
        if final.exists():
            raise SchedgenError(
                f"{final} already exists", code="backup_exists", hint="remove it or pick another id"
            )
        work = directory / (backup_id + PARTIAL_SUFFIX)
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
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
            (work / MANIFEST).write_bytes(body)
            for item in manifest.files:
                path = work / item.path
                with reporter.step(f"pull {item.path}", total=item.size):
                    client.download_file(bucket, _key(prefix, backup_id, item.path), str(path))
                digest = file_digest(path)
                if digest.size != item.size or digest.sha256 != item.sha256:
                    raise SchedgenError(
                        f"pulled {item.path} does not match its checksum", code="backup_corrupt"
                    )
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
