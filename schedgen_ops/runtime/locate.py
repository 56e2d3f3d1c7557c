"""Where the project's running stack is: its target and the compose files of its live release.

Health, backup, restore, the checklist and the load test ask this one module instead of each working
it out: the live release (``.schedgen/releases/current``) names the target and holds the rendered tree
the runtime was deployed from. No release means the local runtime, the embedded default. Where that
stack answers (`endpoints`) is each runtime's own answer (`Runtime.endpoints`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from schedgen_ops.layout import ProjectLayout
from schedgen_ops.runtime.argv import ComposeProject, KubeTarget
from schedgen_ops.runtime.base import Runtime
from schedgen_ops.runtime.endpoints import StackEndpoints
from schedgen_ops.runtime.releases import ReleaseStore
from schedgen_ops.runtime.runner import Runner

if TYPE_CHECKING:
    from schedgen_ops.config import Config

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


def observer(project: Path, target: str, config: Config | None = None) -> Runtime:
    """A runtime of ``target`` for questions only (no audit, no lock): names come from ``config``."""
    from schedgen_ops.runtime.compose import ComposeRuntime
    from schedgen_ops.runtime.kubernetes import KubernetesRuntime
    from schedgen_ops.runtime.local import LocalRuntime

    if target == "local":
        return LocalRuntime(project)
    tree = locate(project).tree
    if target == "compose":
        return ComposeRuntime(config.name if config else "schedgen", Runner(), tree=tree)
    namespace = config.kubernetes.namespace if config else "schedgen"
    return KubernetesRuntime(KubeTarget(namespace), Runner(), tree=tree)


def endpoints(project: Path, target: str, config: Config | None = None) -> StackEndpoints:
    """Where ``target``'s stack of ``project`` answers from this machine (empty facts: not reachable)."""
    return observer(project, target, config).endpoints()
