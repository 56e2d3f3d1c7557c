"""storage: the upload store answers and accepts writes (file:// directory or s3:// bucket)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlparse

from schedgen_ops.ops.health.model import CheckResult, Status
from schedgen_ops.ops.health.runner import ProbeContext

C = "storage"


def probe(ctx: ProbeContext) -> list[CheckResult]:
    url = ctx.endpoints.storage_url
    if not url:
        return [
            CheckResult(
                C,
                "reachable",
                Status.UNKNOWN,
                "no storage URL",
                hint="pass --storage-url file:///DIR or s3://BUCKET (or set SCHEDGEN_STORAGE_URL)",
            )
        ]
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return [_file(Path(unquote(parsed.path)))]
    if parsed.scheme == "s3":
        return [_s3(parsed.netloc, ctx)]
    return [
        CheckResult(
            C,
            "reachable",
            Status.UNKNOWN,
            f"unsupported storage URL scheme {parsed.scheme!r}",
            hint="use file:///DIR or s3://BUCKET/PREFIX",
        )
    ]


def _file(path: Path) -> CheckResult:
    """Write, flush and remove a probe file: a read-only or full volume fails here, not on an upload."""
    if not path.is_dir():
        return CheckResult(
            C,
            "reachable",
            Status.CRITICAL,
            f"{path} does not exist",
            threshold="writable",
            hint="the upload volume is missing or not mounted: uploads fail; mount/create it",
        )
    probe_file = path / f".schedgen-health-{secrets.token_hex(6)}"
    try:
        fd = os.open(probe_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"ok")
            os.fsync(fd)
        finally:
            os.close(fd)
        probe_file.unlink()
    except OSError as exc:
        return CheckResult(
            C,
            "reachable",
            Status.CRITICAL,
            f"{path}: {exc.strerror or exc}",
            threshold="writable",
            hint="uploads cannot be stored: check the volume's permissions and free space",
        )
    return CheckResult(C, "reachable", Status.OK, f"{path} writable", value=True, threshold="writable")


def _s3(bucket: str, ctx: ProbeContext) -> CheckResult:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    ep = ctx.endpoints
    timeout = ctx.deadline.remaining()
    s3 = boto3.client(
        "s3",
        endpoint_url=ep.s3_endpoint_url or None,
        aws_access_key_id=ep.s3_access_key or None,
        aws_secret_access_key=ep.s3_secret_key or None,
        region_name=ep.s3_region,
        config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
    )
    try:
        s3.head_bucket(Bucket=bucket)
    except (BotoCoreError, ClientError) as exc:
        return CheckResult(
            C,
            "reachable",
            Status.CRITICAL,
            f"s3://{bucket}: {exc}"[:200],
            threshold="HEAD bucket",
            hint="the object store is down or the bucket/credentials are wrong: uploads fail",
        )
    return CheckResult(
        C, "reachable", Status.OK, f"s3://{bucket} answers", value=True, threshold="HEAD bucket"
    )
