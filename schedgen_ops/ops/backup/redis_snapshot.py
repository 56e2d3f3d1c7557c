"""Check and restore Redis RDB snapshots.

``redis-check-rdb`` validates a snapshot's structure and checksum and counts its keys. Restoring
loads the snapshot into a throwaway local redis-server and copies every key to the target with
DUMP/RESTORE: it works against any Redis URL (no access to the server's files or restart needed), and
the target keeps its own persistence settings (AOF) untouched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from schedgen_ops.errors import SchedgenError

_KEYS_RE = re.compile(r"\[info\]\s+(\d+)\s+keys read")


def check_rdb(path: Path) -> int | None:
    """Validate an RDB file; return its key count (None when redis-check-rdb is not installed)."""
    binary = shutil.which("redis-check-rdb")
    if binary is None:
        return None
    out = subprocess.run([binary, str(path)], capture_output=True, text=True, check=False)
    text = out.stdout + out.stderr
    if out.returncode != 0 or "RDB ERROR" in text:
        detail = next((line for line in text.splitlines() if "rror" in line), "check failed")
        raise SchedgenError(
            f"{path.name} is not a valid Redis snapshot: {detail.strip()}", code="backup_corrupt"
        )
    match = _KEYS_RE.search(text)
    return int(match.group(1)) if match else 0


def restore_rdb(path: Path, target_url: str, *, flush: bool = True) -> int:
    """Copy every key of the snapshot ``path`` into the Redis at ``target_url``; return the key count."""
    import redis

    from schedgen_ops.runtime.dataservices import RedisServer

    workdir = Path(tempfile.mkdtemp(prefix="schedgen-rdb-"))
    try:
        shutil.copyfile(path, workdir / "dump.rdb")
        scratch = RedisServer.start(workdir, appendonly="no", dbfilename="dump.rdb")
        try:
            source_client = redis.Redis.from_url(scratch.url)
            keyspace = source_client.info("keyspace")
            target_base = redis.Redis.from_url(target_url)
            copied = 0
            try:
                if flush:
                    target_base.flushall()
                for db_name in keyspace:
                    index = int(str(db_name).removeprefix("db"))
                    src = redis.Redis.from_url(scratch.url_for(index))
                    dst = redis.Redis.from_url(_with_db(target_url, index))
                    try:
                        for key in src.scan_iter(count=1000):
                            ttl = src.pttl(key)
                            value = src.dump(key)
                            if value is None:
                                continue
                            dst.restore(key, max(int(ttl), 0), value, replace=True)
                            copied += 1
                    finally:
                        src.close()
                        dst.close()
            finally:
                source_client.close()
                target_base.close()
            return copied
        finally:
            scratch.stop()
    except redis.RedisError as exc:
        raise SchedgenError(f"restoring Redis failed: {exc}", code="redis_restore_failed") from exc
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _with_db(url: str, index: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{index}", parts.query, ""))
