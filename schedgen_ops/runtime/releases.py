"""Releases: every deploy's rendered tree and provenance, kept so any earlier one can be put back.

``.schedgen/releases/<id>/`` holds ``tree/`` (the rendered tree as deployed) and ``release.json``
(target, profile, image tags, toolkit version, git commits, status). ``.schedgen/releases/current``
names the live release. Releases record configuration only: rolling back never touches data.

Status lifecycle: ``pending`` (being deployed) -> ``live`` (gate passed) | ``failed`` (gate failed);
a live release becomes ``superseded`` when another goes live, or ``rolled-back`` when a rollback
replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from schedgen_ops import __version__
from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.audit import current_user

RELEASES_DIR = "releases"
KEEP_RELEASES = 15
_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}(-\d+)?$")


@dataclass
class Release:
    """One release's record (``release.json``)."""

    id: str
    created: str
    target: str
    profile: str | None
    status: str
    toolkit_version: str
    tree_digest: str
    images: dict[str, str] = field(default_factory=dict)
    git_commit: str | None = None
    toolkit_git_commit: str | None = None
    user: str = ""
    previous: str | None = None
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def tree_digest(tree: Path) -> str:
    """sha256 over every file's relative path and bytes: equal trees, equal digests."""
    digest = hashlib.sha256()
    for path in sorted(p for p in tree.rglob("*") if p.is_file()):
        digest.update(path.relative_to(tree).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def images_in_tree(tree: Path) -> dict[str, str]:
    """Image references found in the rendered compose files and Kubernetes manifests, by service/name."""
    images: dict[str, str] = {}
    for path in sorted(tree.rglob("*.y*ml")):
        try:
            docs = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, UnicodeDecodeError):
            continue
        for doc in docs:
            if not isinstance(doc, dict):
                continue
            services = doc.get("services")
            if isinstance(services, dict):
                for name, spec in services.items():
                    if isinstance(spec, dict) and isinstance(spec.get("image"), str):
                        images.setdefault(str(name), spec["image"])
            _collect_container_images(doc, images)
    return dict(sorted(images.items()))


def _collect_container_images(node: Any, images: dict[str, str]) -> None:
    if isinstance(node, dict):
        for key in ("containers", "initContainers"):
            containers = node.get(key)
            if isinstance(containers, list):
                for container in containers:
                    if isinstance(container, dict) and isinstance(container.get("image"), str):
                        images.setdefault(str(container.get("name", "?")), container["image"])
        for value in node.values():
            _collect_container_images(value, images)
    elif isinstance(node, list):
        for value in node:
            _collect_container_images(value, images)


def git_commit(directory: Path) -> str | None:
    """HEAD of the git checkout holding ``directory``, when it is one and git exists."""
    if shutil.which("git") is None:
        return None
    try:
        proc = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


class ReleaseStore:
    """The releases of one project."""

    def __init__(self, state_dir: Path, keep: int = KEEP_RELEASES):
        self.root = state_dir / RELEASES_DIR
        self.keep = keep

    def _dir(self, release_id: str) -> Path:
        return self.root / release_id

    def tree(self, release_id: str) -> Path:
        return self._dir(release_id) / "tree"

    def create(
        self,
        source_tree: Path,
        *,
        target: str,
        profile: str | None,
        project_dir: Path | None = None,
        note: str | None = None,
    ) -> Release:
        """Copy ``source_tree`` into a new pending release and return its record."""
        digest = tree_digest(source_tree)
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        base = f"{stamp}-{digest[:6]}"
        release_id, n = base, 1
        while self._dir(release_id).exists():
            n += 1
            release_id = f"{base}-{n}"
        toolkit_dir = Path(__file__).resolve().parent.parent.parent
        release = Release(
            id=release_id,
            created=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            target=target,
            profile=profile,
            status="pending",
            toolkit_version=__version__,
            tree_digest=digest,
            images=images_in_tree(source_tree),
            git_commit=git_commit(project_dir) if project_dir else None,
            toolkit_git_commit=git_commit(toolkit_dir),
            user=current_user(),
            previous=self.current_id(),
            note=note,
        )
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{release_id}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source_tree, staging / "tree", symlinks=False)
        (staging / "release.json").write_text(json.dumps(release.to_dict(), indent=2) + "\n")
        os.replace(staging, self._dir(release_id))
        return release

    def get(self, release_id: str) -> Release:
        path = self._dir(release_id) / "release.json"
        if not _ID_RE.fullmatch(release_id) or not path.exists():
            known = ", ".join(r.id for r in self.history()[-5:]) or "none yet"
            raise SchedgenError(
                f"no release {release_id!r}", code="unknown_release", hint=f"recent releases: {known}"
            )
        data = json.loads(path.read_text(encoding="utf-8"))
        return Release(**{k: v for k, v in data.items() if k in Release.__dataclass_fields__})

    def save(self, release: Release) -> None:
        path = self._dir(release.id) / "release.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(release.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)

    def mark(self, release_id: str, status: str, note: str | None = None) -> Release:
        release = self.get(release_id)
        release.status = status
        if note is not None:
            release.note = note
        self.save(release)
        return release

    def history(self) -> list[Release]:
        """Every release, oldest first."""
        if not self.root.is_dir():
            return []
        ids = [p.name for p in self.root.iterdir() if p.is_dir() and _ID_RE.fullmatch(p.name)]
        return sorted((self.get(i) for i in ids), key=lambda r: (r.created, r.id))

    def current_id(self) -> str | None:
        try:
            value = (self.root / "current").read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return value or None

    def current(self) -> Release | None:
        current = self.current_id()
        return self.get(current) if current else None

    def set_current(self, release_id: str) -> None:
        """Make ``release_id`` live; the one it replaces becomes superseded."""
        old = self.current_id()
        if old and old != release_id and (self._dir(old) / "release.json").exists():
            previous = self.get(old)
            if previous.status == "live":
                self.mark(old, "superseded")
        self.mark(release_id, "live")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "current.tmp"
        tmp.write_text(release_id + "\n", encoding="utf-8")
        os.replace(tmp, self.root / "current")
        self.prune()

    def previous(self, before: str | None = None) -> Release | None:
        """The newest release that went live earlier than ``before`` (default: the current one)."""
        anchor = before or self.current_id()
        releases = self.history()
        ids = [r.id for r in releases]
        if anchor in ids:
            releases = releases[: ids.index(anchor)]
        candidates = [r for r in releases if r.status in {"live", "superseded", "rolled-back"}]
        return candidates[-1] if candidates else None

    def prune(self) -> list[str]:
        """Drop the oldest releases beyond ``keep`` (never the current one)."""
        releases = self.history()
        current = self.current_id()
        removed = []
        for release in releases[: max(0, len(releases) - self.keep)]:
            if release.id != current:
                shutil.rmtree(self._dir(release.id), ignore_errors=True)
                removed.append(release.id)
        return removed
