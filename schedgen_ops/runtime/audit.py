"""The audit trail: one JSON line per action in ``.schedgen/audit.jsonl``, appended, never rewritten.

Who did what to which release, with what result and how long it took. Lines are written with a single
``write`` on an ``O_APPEND`` descriptor under an exclusive ``flock`` so concurrent writers never interleave.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import socket
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schedgen_ops.layout import ProjectLayout


def current_user() -> str:
    """The human behind the action: the sudo caller when there is one."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AuditLog:
    """Append-only JSON-lines log of actions and the commands they ran."""

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def for_project(cls, project: Path) -> AuditLog:
        return cls(ProjectLayout.of(project).audit_log)

    def append(
        self,
        action: str,
        *,
        result: str,
        release: str | None = None,
        duration_s: float | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Record one entry and return it."""
        entry: dict[str, Any] = {
            "time": utc_now(),
            "user": current_user(),
            "host": socket.gethostname(),
            "action": action,
            "release": release,
            "result": result,
            "duration_s": None if duration_s is None else round(duration_s, 3),
        }
        entry.update(extra)
        line = (json.dumps(entry, sort_keys=False, default=str) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)
        return entry

    def tail(self, n: int | None = None) -> list[dict[str, Any]]:
        """The last ``n`` entries (all when ``n`` is None), oldest first; unreadable lines are skipped."""
        if not self.path.exists():
            return []
        lines: deque[str] = deque(maxlen=n) if n else deque()
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    lines.append(line)
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return entries
