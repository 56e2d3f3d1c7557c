"""One backup or restore at a time per backup directory, with the holder named on refusal.

An advisory ``flock`` on DIR/.lock: the kernel releases it when the holder dies, so a crashed run
never leaves a stale lock; the file's content (pid, host, command, since) names the holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.manifest import FILE_MODE, iso, utcnow
from schedgen_ops.ops.backup.private import private_dir

LOCK_FILE = ".lock"


def _holder_text(handle: IO[str]) -> str:
    handle.seek(0)
    raw = handle.read()
    try:
        info = json.loads(raw)
        return f"pid {info['pid']} on {info['host']} ({info['operation']}, since {info['since']})"
    except (ValueError, KeyError, TypeError):
        return "an unknown process"


@contextmanager
def backup_lock(directory: Path, operation: str) -> Iterator[None]:
    """Hold the directory's lock for ``operation``; raise naming the holder if another run has it."""
    private_dir(directory)
    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, FILE_MODE)
    handle = os.fdopen(fd, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise SchedgenError(
                f"another backup operation holds {path}: {_holder_text(handle)}",
                code="backup_locked",
                hint="wait for it to finish; the lock is released automatically when that process exits",
            ) from exc
        handle.seek(0)
        handle.truncate()
        json.dump(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "operation": operation,
                "command": " ".join(sys.argv[:6]),
                "since": iso(utcnow()),
            },
            handle,
        )
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    finally:
        handle.close()


def is_locked(directory: Path) -> bool:
    """True while some process holds the directory's lock (used by prune to spare .partial sets)."""
    path = directory / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False
