"""Read a service's log files the way `schedgen logs` shows them: merged by time, filtered, followed.

Each line is prefixed with the file's program (``api-1 | ...``). Timestamps are taken from our JSON logs
(``ts``), Postgres (``2026-11-28 13:00:00.123 UTC``), Redis (``28 Nov 2026 13:00:00.123``) and
supervisord lines; a line without one inherits the previous line's time (tracebacks, continuations).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schedgen_ops.errors import SchedgenError

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")
_ISO = re.compile(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})")
_REDIS = re.compile(r"(\d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2})")


def parse_since(value: str, now: datetime | None = None) -> datetime:
    """``10m`` / ``2h`` / ``30s`` / ``1d`` before now, or an ISO timestamp."""
    now = now or datetime.now(UTC)
    match = _DURATION.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{{"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[unit]: amount})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise SchedgenError(
            f"--since {value!r} is neither a duration nor a timestamp",
            code="bad_since",
            hint="use e.g. 10m, 2h, 1d or 2026-11-28T13:00:00",
            exit_code=2,
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def line_time(line: str) -> datetime | None:
    """The timestamp a log line carries, if any (all our processes log in UTC)."""
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("ts"), str):
            return _iso(data["ts"])
    head = line[:40]
    match = _ISO.search(head)
    if match:
        return datetime.fromisoformat(f"{match.group(1)}T{match.group(2)}+00:00")
    match = _REDIS.search(head)
    if match:
        return datetime.strptime(match.group(1), "%d %b %Y %H:%M:%S").replace(tzinfo=UTC)
    return None


def _iso(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_files(files: list[Path], *, since: str | None = None, tail: int | None = None) -> Iterator[str]:
    """Lines of every file, prefixed with its program name, merged by time, last ``tail`` only."""
    cutoff = parse_since(since) if since else None
    entries: list[tuple[datetime, int, str]] = []
    epoch = datetime.min.replace(tzinfo=UTC)
    seq = 0
    for path in files:
        label = path.stem
        last = epoch
        for raw in path.read_text(errors="replace").splitlines():
            stamp = line_time(raw) or last
            last = stamp
            if cutoff is not None and stamp < cutoff:
                continue
            entries.append((stamp, seq, f"{label} | {raw}"))
            seq += 1
    entries.sort(key=lambda e: (e[0], e[1]))
    lines = [text for _, _, text in entries]
    if tail is not None:
        lines = lines[-tail:] if tail > 0 else []
    yield from lines


def follow_files(files: list[Path], poll_s: float = 0.25) -> Iterator[str]:
    """New lines appended to any of ``files`` after now, until interrupted (like ``tail -f``)."""
    offsets = {path: path.stat().st_size if path.exists() else 0 for path in files}
    while True:
        for path in files:
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offsets[path]:  # rotated or truncated
                offsets[path] = 0
            if size == offsets[path]:
                continue
            with path.open("rb") as handle:
                handle.seek(offsets[path])
                chunk = handle.read()
            complete = chunk.rfind(b"\n") + 1
            offsets[path] += complete
            for raw in chunk[:complete].decode(errors="replace").splitlines():
                yield f"{path.stem} | {raw}"
        time.sleep(poll_s)
