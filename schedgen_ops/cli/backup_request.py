"""The request of a pg_dump set taken from the CLI (`schedgen backup`, and the safety set every
restore takes first): what a set records of where it came from is filled in once, here."""

from __future__ import annotations

from schedgen_ops.ops.backup.context import BackupContext
from schedgen_ops.ops.backup.create import BackupRequest
from schedgen_ops.ops.backup.signing import SigningKey
from schedgen_ops.ops.backup.sources import S3Settings
from schedgen_ops.ops.backup.targets import Target


def set_request(
    ctx_: BackupContext,
    target: Target,
    key: SigningKey | None,
    *,
    with_uploads: bool,
    include_secrets: bool = False,
    reason: str = "manual",
) -> BackupRequest:
    """A set of ``target`` into the context's backup directory, signed with ``key``; ``with_uploads``
    archives the upload objects too (a point-in-time restore's safety set holds the database only)."""
    return BackupRequest(
        target=target,
        directory=ctx_.directory,
        project_dir=ctx_.project,
        profile=ctx_.profile,
        storage_url=(ctx_.storage_url or None) if with_uploads else None,
        s3=ctx_.s3 if with_uploads else S3Settings(),
        include_secrets=include_secrets,
        reason=reason,
        key=key,
        project_name=ctx_.project_name,
    )
