"""Read a pg_dump custom-format archive: its table of contents and its rows.

Row counts come from the archive itself (``pg_restore --data-only -f -`` emits one COPY text line per
row, newlines inside values escaped), so they describe exactly what was dumped, on any target, and
reading them is the "full read" that proves every data block decompresses.
"""

from __future__ import annotations

import re
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.streaming import ProgressFn, run_checked, stream_lines
from schedgen_ops.ops.backup.tools import PgTools

_COPY_RE = re.compile(rb"^COPY (.+?) \(.*\) FROM stdin;$")
_COPY_END = b"\\.\n"


def _unquote(name: str) -> str:
    return ".".join(part.strip('"') for part in re.findall(r'"(?:[^"]|"")*"|[^.]+', name))


def table_of_contents(tools: PgTools, archive: Path) -> list[str]:
    """``pg_restore --list`` entries (fails on a damaged header or TOC)."""
    out = run_checked([tools.path("pg_restore"), "--list", str(archive)], what="pg_restore --list")
    entries = [line for line in out.splitlines() if line and not line.startswith(";")]
    if not entries:
        raise SchedgenError(f"{archive} has an empty table of contents", code="backup_corrupt")
    return entries


def count_rows(tools: PgTools, archive: Path, progress: ProgressFn | None = None) -> dict[str, int]:
    """Rows per table (``schema.table``) in the archive, reading every data block."""
    counts: dict[str, int] = {}
    current: str | None = None
    argv = [tools.path("pg_restore"), "--data-only", "--file=-", str(archive)]
    with stream_lines(argv, what="reading the archive's data (pg_restore --data-only)") as lines:
        for line in lines:
            if progress:
                progress(len(line))
            if current is not None:
                if line == _COPY_END:
                    current = None
                else:
                    counts[current] += 1
                continue
            match = _COPY_RE.match(line.rstrip(b"\n"))
            if match:
                current = _unquote(match.group(1).decode())
                counts.setdefault(current, 0)
    if current is not None:
        raise SchedgenError(
            f"{archive}: the data of {current} ends without its terminator (truncated archive)",
            code="backup_corrupt",
        )
    return dict(sorted(counts.items()))
