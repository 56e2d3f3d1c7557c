"""Where the project's running stack is: its target and the compose files of its live release.

Health, backup, restore, the checklist and the load test ask this one module instead of each working
it out: the live release (``.schedgen/releases/current``) names the target and holds the rendered tree
the runtime was deployed from. No release means the local runtime, the embedded default.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.layout import ProjectLayout
from schedgen_ops.runtime.argv import ComposeProject
from schedgen_ops.runtime.releases import ReleaseStore

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")


@dataclass(frozen=True)
class StackLocation:
    target: str
    release: str | None
    tree: Path | None

    def compose_project(self, name: str) -> ComposeProject:
        """``-p NAME`` over the live release's files (only ``-p`` when no compose release is live)."""
        if self.tree is None or self.target != "compose":
            return ComposeProject(name, ())
        return ComposeProject(name, tuple(self.tree / "compose" / f for f in COMPOSE_FILES))


def locate(project: Path) -> StackLocation:
    """The live release's target and tree, or the local runtime when nothing was deployed."""
    store = ReleaseStore(ProjectLayout.of(project).state)
    current = store.current()
    if current is None:
        return StackLocation("local", None, None)
    return StackLocation(current.target, current.id, store.tree(current.id))


def default_target(project: Path, given: str | None) -> str:
    """An explicit --target wins; otherwise the live release's target."""
    return given or locate(project).target
