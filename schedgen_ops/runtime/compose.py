"""The compose runtime: Docker Compose v2 changes the stack, the Engine API answers questions about it."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import ProcessStatus, ServiceStatus
from schedgen_ops.runtime.engine import DockerEngine
from schedgen_ops.runtime.runner import Runner

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")
APP_SERVICES = ("api", "pdf-worker")


class ComposeRuntime:
    """One compose project (``-p NAME``) over the rendered base + production files."""

    name = "compose"

    def __init__(
        self,
        project_name: str,
        runner: Runner,
        *,
        tree: Path | None = None,
        desired: Mapping[str, int] | None = None,
        engine_factory: Callable[[], DockerEngine] = DockerEngine,
    ):
        self.project_name = project_name
        self.runner = runner
        self.tree = tree
        self.desired_counts = dict(desired or {})
        self.engine_factory = engine_factory

    def project(self, tree: Path | None = None) -> A.ComposeProject:
        tree = tree or self.tree
        if tree is None:
            raise SchedgenError(
                "no deployed compose tree", code="no_release", hint="run `schedgen deploy --target compose`"
            )
        files = tuple(tree / "compose" / name for name in COMPOSE_FILES)
        return A.ComposeProject(self.project_name, files)

    def up(self, tree: Path) -> None:
        self.deploy(tree)

    def deploy(self, tree: Path) -> None:
        """Validate, pull every image first, then converge (healthchecks gate ``--wait``)."""
        project = self.project(tree)
        self.runner.run(A.compose_config_check(project))
        self.runner.run(A.compose_pull(project))
        self.runner.run(A.compose_up(project))
        self.tree = tree

    def rollback(self, tree: Path) -> None:
        self.deploy(tree)

    def down(self, *, volumes: bool = False) -> None:
        self.runner.run(A.compose_down(self.project(), volumes=volumes))

    def scale(self, counts: Mapping[str, int]) -> None:
        self.runner.run(A.compose_scale(self.project(), counts))
        self.desired_counts.update(counts)

    def status(self) -> list[ServiceStatus]:
        engine = self.engine_factory()
        containers = engine.containers(self.project_name)
        services: dict[str, ServiceStatus] = {}
        for container in containers:
            service = services.setdefault(
                container.service,
                ServiceStatus(container.service, self.desired_counts.get(container.service, 1), 0, "ok"),
            )
            stats = engine.stats(container.id) if container.state == "running" else None
            service.processes.append(
                ProcessStatus(
                    name=container.name,
                    state=container.state,
                    uptime_s=container.uptime_s(),
                    restarts=container.restarts,
                    cpu_percent=stats.cpu_percent if stats else None,
                    memory_bytes=stats.memory_bytes if stats else None,
                    health=container.health,
                )
            )
        for service in services.values():
            running = [p for p in service.processes if p.state == "running"]
            service.running = len(running)
            unhealthy = [p for p in running if p.health not in (None, "healthy")]
            if service.running < service.desired or unhealthy:
                service.health = "degraded"
        return sorted(services.values(), key=lambda s: s.name)

    def logs(
        self, service: str, *, follow: bool = False, since: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        yield from self.runner.stream(
            A.compose_logs(self.project(), service, follow=follow, since=since, tail=tail)
        )

    def exec(self, service: str, command: list[str]) -> int:
        return self.runner.run(
            A.compose_exec(self.project(), service, command), check=False, capture=False
        ).returncode
