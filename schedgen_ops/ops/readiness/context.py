"""What a check evaluates against: the rendered tree (static), the running stack (live), the project."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from schedgen_ops.config import Config
from schedgen_ops.ops.readiness.model import NotApplicable, Scope
from schedgen_ops.ops.readiness.tree import Manifest, RenderedTree
from schedgen_ops.targets import TARGETS


@dataclass
class LiveTarget:
    """How live checks reach the stack: the api base URL and where backups / load-test reports live."""

    url: str
    backup_dir: Path | None = None
    report_dirs: list[Path] = field(default_factory=list)
    runbook: Path | None = None
    health_target: str | None = None
    database_url: str | None = None
    worker_metrics_urls: list[str] = field(default_factory=list)
    redis_url: str | None = None
    timeout_s: float = 5.0


@dataclass
class Context:
    """Everything checks may look at. Checks raise `NotApplicable` for what is missing here."""

    project: Path
    tree: RenderedTree | None = None
    targets: frozenset[str] = frozenset(TARGETS)
    profile: str | None = None
    live: LiveTarget | None = None
    config: Config | None = None
    secret_values: dict[str, str] = field(default_factory=dict)

    def compose(self) -> RenderedTree:
        """The tree, when compose output is in scope and present."""
        if self.tree is None or "compose" not in self.targets or not self.tree.has_compose:
            raise NotApplicable("no compose output in scope")
        return self.tree

    def kubernetes(self) -> RenderedTree:
        if self.tree is None or "kubernetes" not in self.targets or not self.tree.has_kubernetes:
            raise NotApplicable("no Kubernetes output in scope")
        return self.tree

    def static_tree(self) -> RenderedTree:
        if self.tree is None:
            raise NotApplicable("no rendered tree")
        return self.tree

    def has_compose(self) -> bool:
        return self.tree is not None and "compose" in self.targets and self.tree.has_compose

    def has_kubernetes(self) -> bool:
        return self.tree is not None and "kubernetes" in self.targets and self.tree.has_kubernetes

    def has_local(self) -> bool:
        return (
            self.tree is not None and "local" in self.targets and self.tree.exists("local/supervisord.conf")
        )

    def need_compose_or_kubernetes(self) -> None:
        """For checks of containers: raise `NotApplicable` unless compose or Kubernetes output is in scope."""
        if not self.has_compose() and not self.has_kubernetes():
            raise NotApplicable("no compose or Kubernetes output in scope")

    def need_any_runtime(self) -> None:
        """For checks of the whole stack: raise `NotApplicable` unless some runtime's output is in scope."""
        if not self.has_compose() and not self.has_kubernetes() and not self.has_local():
            raise NotApplicable("no compose, Kubernetes or local output in scope")

    def need(self, scope: Scope) -> None:
        """Raise `NotApplicable` unless the output ``scope`` names is in scope."""
        if scope == "any-runtime":
            self.need_any_runtime()
        else:
            self.need_compose_or_kubernetes()

    def manifests(self) -> list[Manifest]:
        return self.kubernetes().manifests() if self.has_kubernetes() else []

    def need_live(self) -> LiveTarget:
        if self.live is None:
            raise NotApplicable("live checks need --live")
        return self.live
