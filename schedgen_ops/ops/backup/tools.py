"""Find PostgreSQL client tools (pg_dump, pg_dumpall, pg_restore, psql) matched to a server's version.

pg_dump refuses to dump a server newer than itself and pg_restore cannot read an archive written by a
newer pg_dump, so the tools come from the installed major version equal to the server's (or the
lowest newer one): /usr/lib/postgresql/<major>/bin first, then PATH when it reports a usable version.
"""

from __future__ import annotations

import glob
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.errors import SchedgenError

PG_TOOLS = ("pg_dump", "pg_dumpall", "pg_restore", "psql")
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


def tool_version(binary: Path) -> tuple[int, str]:
    """(major, full version line) reported by ``binary --version``."""
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, check=False)
    line = out.stdout.strip()
    match = _VERSION_RE.search(line)
    if out.returncode != 0 or match is None:
        raise SchedgenError(
            f"{binary} --version failed: {(out.stderr or out.stdout).strip()[:200]}",
            code="pg_tool_broken",
            hint="reinstall the PostgreSQL client package",
        )
    return int(match.group(1)), line


def installed_bindirs() -> dict[int, Path]:
    """Installed PostgreSQL major version -> bin directory holding all client tools."""
    found: dict[int, Path] = {}
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        bindir = Path(path)
        name = bindir.parent.name
        if name.isdigit() and all((bindir / tool).is_file() for tool in PG_TOOLS):
            found[int(name)] = bindir
    on_path = shutil.which("pg_dump")
    if on_path:
        bindir = Path(on_path).resolve().parent
        if all((bindir / tool).is_file() for tool in PG_TOOLS):
            try:
                major, _ = tool_version(bindir / "pg_dump")
            except SchedgenError:
                major = 0
            if major and major not in found:
                found[major] = bindir
    return found


@dataclass(frozen=True)
class PgTools:
    """The client tools of one PostgreSQL major version."""

    major: int
    bindir: Path

    def path(self, tool: str) -> str:
        return str(self.bindir / tool)

    def version(self, tool: str = "pg_dump") -> str:
        return tool_version(self.bindir / tool)[1]


def tools_for_server(server_major: int) -> PgTools:
    """Client tools able to dump and restore a server of ``server_major`` (same major preferred)."""
    bindirs = installed_bindirs()
    usable = sorted(major for major in bindirs if major >= server_major)
    if not usable:
        have = ", ".join(str(m) for m in sorted(bindirs)) or "none"
        raise SchedgenError(
            f"no PostgreSQL client tools >= {server_major} installed (found: {have})",
            code="pg_tools_missing",
            hint=f"apt-get install postgresql-client-{server_major}",
        )
    major = usable[0]
    return PgTools(major, bindirs[major])


def newest_tools() -> PgTools:
    """The newest installed client tools (pg_restore reads archives of every older version)."""
    bindirs = installed_bindirs()
    if not bindirs:
        raise SchedgenError(
            "no PostgreSQL client tools found on PATH or in /usr/lib/postgresql/*/bin",
            code="pg_tools_missing",
            hint="apt-get install postgresql-client",
        )
    major = max(bindirs)
    return PgTools(major, bindirs[major])


def archive_tools(dump_major: int | None) -> PgTools:
    """Tools to read an archive written by pg_dump ``dump_major`` (that version or newer)."""
    return tools_for_server(dump_major) if dump_major else newest_tools()


def major_of(version_line: str) -> int | None:
    """The major version in a ``pg_dump (PostgreSQL) 15.8`` line."""
    match = _VERSION_RE.search(version_line or "")
    return int(match.group(1)) if match else None
