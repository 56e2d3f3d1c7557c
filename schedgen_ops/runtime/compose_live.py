"""One stable directory the compose stack runs from (``.schedgen/compose``), refreshed from each release.

Compose hashes a service's bind-mount sources and env_file paths. Run straight from a release tree
(``releases/<id>/tree/compose``) every path changes with every release, so every deploy recreated Postgres
and Redis: a gap in the data tier no rolling of the api can hide. From one stable directory the paths
stay put; what really changed is found by content instead, and only the services that mount a changed
file are recreated.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from schedgen_ops.layout import ProjectLayout


def live_dir(tree: Path) -> Path | None:
    """``.schedgen/compose`` of the project a release tree belongs to (None for a tree elsewhere)."""
    layout = ProjectLayout.containing(tree.parent)
    return None if layout is None else layout.compose


def _files(root: Path) -> dict[str, Path]:
    return (
        {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}
    )


def sync(source: Path, live: Path) -> set[str]:
    """Make ``live`` an exact copy of ``source`` (modes kept: secrets stay 0600); return the relative
    paths whose content changed, appeared or disappeared."""
    live.mkdir(mode=0o700, parents=True, exist_ok=True)
    new, old = _files(source), _files(live)
    changed = set()
    for rel, path in new.items():
        target = live / rel
        if rel in old and old[rel].read_bytes() == path.read_bytes():
            if (old[rel].stat().st_mode & 0o777) != (path.stat().st_mode & 0o777):
                os.chmod(target, path.stat().st_mode & 0o777)
            continue
        changed.add(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.tmp")
        shutil.copy2(path, temporary)
        os.replace(temporary, target)
    for rel in set(old) - set(new):
        changed.add(rel)
        old[rel].unlink()
    return changed


def services_mounting(services: dict[str, dict], changed: Iterable[str]) -> set[str]:
    """Services of a compose document whose ``./`` bind mounts or env_files cover a changed path."""
    changed = set(changed)
    hits = set()
    for name, spec in services.items():
        sources = []
        for volume in (spec or {}).get("volumes") or []:
            source = volume.get("source", "") if isinstance(volume, dict) else str(volume).split(":", 1)[0]
            if source.startswith("./"):
                sources.append(source.removeprefix("./"))
        env_files = (spec or {}).get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = str(env_file.get("path", "") if isinstance(env_file, dict) else env_file)
            if path and not path.startswith("/"):
                sources.append(path.removeprefix("./"))
        for source in (s.rstrip("/") for s in sources):
            if source and any(path == source or path.startswith(source + "/") for path in changed):
                hits.add(name)
    return hits
