"""The compose runtime: Docker Compose v2 changes the stack, the Engine API answers questions about it.

A deploy validates the merged files, makes sure every image is on the engine (our service image is
built when missing, others are pulled only when missing, and each failure says which it was), converges
with ``up --wait`` (healthchecks), then runs the same gate as the local runtime *inside* the api
containers: every replica ready, a worker heartbeat, a canary upload parsed end to end. The image ids a
release ran are recorded beside its tree, so a rollback puts the earlier images back as well as files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import ProcessStatus, ServiceStatus
from schedgen_ops.runtime.engine import DockerEngine
from schedgen_ops.runtime.gate import GateReport
from schedgen_ops.runtime.runner import Runner

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")
APP_SERVICES = ("api", "pdf-worker")
IMAGES_FILE = "images.json"
#: Seconds `up --wait` may take for every healthcheck to pass (Postgres init on a fresh volume included).
UP_WAIT_S = 300


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
        service_image: str | None = None,
        api_port: int = 8000,
        engine_factory: Callable[[], DockerEngine] = DockerEngine,
        build_missing: Callable[[str], None] | None = None,
    ):
        self.project_name = project_name
        self.runner = runner
        self.tree = tree
        self.desired_counts = dict(desired or {})
        self.service_image = service_image
        self.api_port = api_port
        self.engine_factory = engine_factory
        self.build_missing = build_missing

    def project(self, tree: Path | None = None, *, files_required: bool = False) -> A.ComposeProject:
        """The compose project; without a live tree only ``-p NAME`` (enough for down, logs, exec)."""
        tree = tree or self.tree
        if tree is None:
            if files_required:
                raise SchedgenError(
                    "no deployed compose tree",
                    code="no_release",
                    hint="run `schedgen deploy --target compose`",
                )
            return A.ComposeProject(self.project_name, ())
        files = tuple(tree / "compose" / name for name in COMPOSE_FILES)
        return A.ComposeProject(self.project_name, files)

    # --------------------------------------------------------------------------------------- images

    def images(self, tree: Path) -> list[str]:
        """Every image the merged files name (``compose config --images``)."""
        result = self.runner.run(A.compose_images(self.project(tree)), read_only=True, timeout_s=60)
        return sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})

    def ensure_images(self, tree: Path) -> None:
        """Build our image when it is missing, pull other missing images; never pull what is present."""
        from schedgen_ops.runtime.imagebuild import image_present

        if self.runner.dry_run:
            self.runner.note("images: build ours, pull others, only where the engine lacks them")
            return
        for image in self.images(tree):
            if image_present(self.runner, image) is not None:
                continue
            if image == self.service_image:
                if self.build_missing is None:
                    raise SchedgenError(
                        f"the service image {image} is not on this engine",
                        code="image_missing",
                        hint="build it with `schedgen build`, or `docker load`/pull it from your registry",
                    )
                self.runner.note(f"the service image {image} is missing: building it")
                self.build_missing(image)
                continue
            result = self.runner.run(A.docker_pull(image), check=False, timeout_s=600)
            if not result.ok:
                lines = (result.stderr or result.stdout).strip().splitlines()
                raise SchedgenError(
                    f"pulling {image} failed: {lines[-1] if lines else 'no output'}",
                    code="pull_failed",
                    hint="load or pull it by hand, or point its setting at an image this engine has "
                    "(`schedgen config show` lists every image under derived.images)",
                )

    def record_images(self, tree: Path) -> None:
        """Image ids this release runs, beside its tree (what rollback re-tags)."""
        from schedgen_ops.runtime.imagebuild import image_present

        if self.runner.dry_run:
            return
        ids = {}
        for image in self.images(tree):
            found = image_present(self.runner, image)
            if found is not None:
                ids[image] = found[0]
        (tree.parent / IMAGES_FILE).write_text(json.dumps(ids, indent=2, sort_keys=True) + "\n")

    def restore_images(self, tree: Path) -> None:
        """Point each tag back at the image id the release ran (a rebuilt tag would run new code)."""
        from schedgen_ops.runtime.imagebuild import docker_tag, image_present

        try:
            ids = json.loads((tree.parent / IMAGES_FILE).read_text())
        except (OSError, ValueError):
            return
        for image, image_id in sorted(ids.items()):
            found = image_present(self.runner, image)
            if found is not None and found[0] == image_id:
                continue
            if image_present(self.runner, image_id) is None:
                self.runner.note(f"image {image_id[:19]} of {image} is gone; keeping the current {image}")
                continue
            self.runner.run(docker_tag(image_id, image))

    # ------------------------------------------------------------------------------------ lifecycle

    def up(self, tree: Path) -> None:
        self.deploy(tree)

    def deploy(self, tree: Path) -> None:
        """Validate, make sure the images exist, converge (healthchecks gate ``--wait``), record images."""
        project = self.project(tree)
        self.runner.run(A.compose_config_check(project))
        self.ensure_images(tree)
        self._converge(project)
        self.tree = tree
        self.record_images(tree)

    def _converge(self, project: A.ComposeProject) -> None:
        scale = {k: v for k, v in self.desired_counts.items() if k in APP_SERVICES}
        result = self.runner.run(
            A.compose_up(project, timeout_s=UP_WAIT_S, scale=scale), check=False, timeout_s=UP_WAIT_S + 60
        )
        if not result.ok:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise SchedgenError(
                f"compose up did not converge: {lines[-1] if lines else f'exit {result.returncode}'}",
                code="compose_up_failed",
                hint="see `schedgen status` and `schedgen logs SERVICE`",
            )

    def rollback(self, tree: Path) -> None:
        self.restore_images(tree)
        project = self.project(tree)
        self.runner.run(A.compose_config_check(project))
        self._converge(project)
        self.tree = tree

    def down(self, *, volumes: bool = False) -> None:
        self.runner.run(A.compose_down(self.project(), volumes=volumes), timeout_s=900)

    def scale(self, counts: Mapping[str, int]) -> None:
        self.runner.run(A.compose_scale(self.project(files_required=True), counts), timeout_s=900)
        self.desired_counts.update(counts)

    # ----------------------------------------------------------------------------------------- gate

    def _gate_exec(self, index: int, checks: str, timeout_s: float) -> dict[str, object]:
        command = [
            "python",
            "-m",
            "schedgen_ops.runtime.gate",
            "--url",
            f"http://127.0.0.1:{self.api_port}",
            "--timeout",
            f"{timeout_s:g}",
            "--checks",
            checks,
        ]
        argv = A.compose_exec(self.project(), "api", command, index=index)
        result = self.runner.run(argv, check=False, read_only=True, timeout_s=timeout_s * 2 + 60)
        try:
            report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            lines = (result.stderr or result.stdout).strip().splitlines()
            report = {"ok": False, "check": "gate exec", "detail": lines[-1] if lines else "no output"}
        return report

    def gate(self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]) -> GateReport:
        """The local gate, run inside each api replica (no port of the stack needs to be reachable)."""
        from schedgen_ops.runtime.gate import GateFailure

        self.tree = tree
        if self.runner.dry_run:
            extra = ", a canary upload parsed end to end" if canary else ""
            self.runner.note(f"health gate inside the api containers: /readyz per replica, a worker{extra}")
            return GateReport()
        report = GateReport()
        replicas = max(1, self.desired_counts.get("api", 1))
        for index in range(1, replicas + 1):
            answer = self._gate_exec(index, "ready", timeout_s)
            if not answer.get("ok"):
                raise GateFailure(str(answer.get("check")), f"api replica {index}: {answer.get('detail')}")
            report.checks[f"ready api-{index}"] = "ok"
            echo(f"gate: api replica {index} ready")
        answer = self._gate_exec(1, "workers,canary" if canary else "workers", timeout_s)
        if not answer.get("ok"):
            raise GateFailure(str(answer.get("check")), str(answer.get("detail")))
        checks = answer.get("checks")
        report.checks.update(
            {str(k): str(v) for k, v in (checks if isinstance(checks, dict) else {}).items()}
        )
        echo(f"gate: {report.checks.get('workers', '?')} worker(s)")
        if canary:
            report.canary_job = str(answer.get("canary_job"))
            events = answer.get("canary_events")
            report.canary_events = events if isinstance(events, int) else None
            echo(f"gate: canary job {report.canary_job} parsed ({report.canary_events} events)")
        return report

    # -------------------------------------------------------------------------------------- reading

    def status(self) -> list[ServiceStatus]:
        engine = self.engine_factory()
        containers = [c for c in engine.containers(self.project_name) if not c.one_shot]
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

    def urls(self) -> dict[str, str]:
        return {}

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
