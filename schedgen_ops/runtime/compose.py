"""The compose runtime: Docker Compose v2 changes the stack, the Engine API answers questions about it.

A deploy validates the merged files and makes sure every image is on the engine (our service image is
built when missing, others are pulled only when missing, and each failure says which it was). On a stack
that already serves, it is a rolling replacement (docker-rollout's scheme, see rolling.py): the data
services and one-shots converge first, then new api and worker containers start beside the serving ones
(``up --no-recreate --scale``) and must turn healthy. The gate then runs *inside* the new api containers
(every new replica ready); the old workers are stopped (SIGTERM: each finishes its job within its
stop_grace_period), a canary upload goes through a new api to the new workers, and only then are the old
api containers stopped (uvicorn drains its in-flight requests). A failure before that point removes the
new containers and leaves the serving ones as they were. An empty stack is simply brought up
(``up --wait``). The image ids a release ran are recorded beside its tree, so a rollback puts the
earlier images back as well as files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import yaml

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime import compose_images
from schedgen_ops.runtime.base import NotSwitched, ProcessStatus, ServiceStatus
from schedgen_ops.runtime.compose_live import live_dir, services_mounting, sync
from schedgen_ops.runtime.endpoints import StackEndpoints
from schedgen_ops.runtime.engine import ContainerState, DockerEngine
from schedgen_ops.runtime.gate import GateFailure, GateReport
from schedgen_ops.runtime.rolling import Generation, classify, one_shot_services, surge_counts, tree_labels
from schedgen_ops.runtime.runner import Runner

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml")
APP_SERVICES = ("api", "pdf-worker")
#: Converged after a roll without its dependencies (it depends on a healthy api, which must not restart).
EDGE_SERVICE = "traefik"
IMAGES_FILE = "images.json"
#: Seconds `up --wait` may take for every healthcheck to pass (Postgres init on a fresh volume included).
UP_WAIT_S = 300
#: Seconds `docker stop` may take: the longest stop_grace_period (a worker's job timeout + 30 s) and slack.
STOP_WAIT_S = 1200
UP_HINT = "see `schedgen status` and `schedgen logs SERVICE`"


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
        #: Containers this deploy started beside the serving ones (removed again if it fails staged).
        self._started: set[str] = set()
        #: Whether the last apply rolled a serving stack (else it brought an empty one up).
        self._rolled = False

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
        return compose_images.listed(self.runner, self.project(tree))

    def ensure_images(self, tree: Path) -> None:
        """Build our images when missing, pull other missing images; never pull what is present."""
        if self.runner.dry_run:
            self.runner.note("images: build ours, pull others, only where the engine lacks them")
            return
        compose_images.ensure(self.runner, self.images(tree), self.service_image, self.build_missing)

    def record_images(self, tree: Path) -> None:
        """Image ids this release runs, beside its tree (what rollback re-tags)."""
        if not self.runner.dry_run:
            compose_images.record(self.runner, self.images(tree), tree.parent / IMAGES_FILE)

    def restore_images(self, tree: Path) -> None:
        """Point each tag back at the image id the release ran (a rebuilt tag would run new code)."""
        compose_images.restore(self.runner, tree.parent / IMAGES_FILE)

    # ------------------------------------------------------------------------------------ lifecycle

    def up(self, tree: Path) -> None:
        self.deploy(tree)

    def deploy(self, tree: Path) -> None:
        """Validate, make sure the images exist, then bring up or roll (new beside old), record images."""
        project = self.project(tree)
        self.runner.run(A.compose_config_check(project))
        self.ensure_images(tree)
        self._apply(tree)
        self.tree = tree
        self.record_images(tree)

    def rollback(self, tree: Path) -> None:
        """The same roll to an earlier tree, after its image ids are put back under their tags."""
        self.restore_images(tree)
        self.runner.run(A.compose_config_check(self.project(tree)))
        self._apply(tree)
        self.tree = tree

    def deploy_gated(
        self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]
    ) -> GateReport:
        """Deploy (or, for a tree that ran before, roll back to) ``tree`` and gate it before the switch.

        Anything failing before the old containers are touched (images, the new containers' health,
        a new api replica's readiness) removes what was started and raises `NotSwitched`: the serving
        release never stopped and needs no rollback. Later failures are ordinary gate failures.
        """
        ran_before = (tree.parent / IMAGES_FILE).is_file()
        try:
            if ran_before:
                self.restore_images(tree)
            self.runner.run(A.compose_config_check(self.project(tree)))
            if not ran_before:
                self.ensure_images(tree)
        except SchedgenError as exc:
            raise NotSwitched(exc.one_line()) from exc
        self._apply(tree)
        self.tree = tree
        if not ran_before:
            self.record_images(tree)
        return self.gate(tree, canary=canary, timeout_s=timeout_s, echo=echo, staged=True)

    def _converge(self, project: A.ComposeProject) -> None:
        scale = {k: v for k, v in self.desired_counts.items() if k in APP_SERVICES}
        self._up(A.compose_up(project, timeout_s=UP_WAIT_S, scale=scale), "compose up", UP_HINT)

    def _up(self, argv: list[str], what: str, hint: str) -> None:
        """Run one ``compose up``; a failure names ``what`` did not converge and compose's last line."""
        result = self.runner.run(argv, check=False, timeout_s=UP_WAIT_S + 60)
        if not result.ok:
            raise SchedgenError(
                f"{what} did not converge: " + _last_line(result.stderr or result.stdout, result.returncode),
                code="compose_up_failed",
                hint=hint,
            )

    def desired(self, service: str) -> int:
        return max(1, self.desired_counts.get(service, 1))

    def generations(self, tree: Path) -> dict[str, Generation]:
        """The app services' containers split into this tree's release and the others (rolling.py)."""
        from schedgen_ops.runtime.imagebuild import image_present

        hashes = tree_labels((tree / "compose" / COMPOSE_FILES[0]).read_text(encoding="utf-8"), APP_SERVICES)
        found = image_present(self.runner, self.service_image) if self.service_image else None
        image_id = found[0] if found else ""
        containers = [c for c in self.engine_factory().containers(self.project_name) if not c.one_shot]
        return {
            service: classify(containers, service, hashes.get(service, ""), image_id, self.desired(service))
            for service in APP_SERVICES
        }

    def _live_project(self, tree: Path) -> tuple[A.ComposeProject, set[str]]:
        """The project run from ``.schedgen/compose`` (refreshed from ``tree``) and the services that
        mount a file whose content changed (compose_live.py); the tree itself when it has no project."""
        live = None if self.runner.dry_run else live_dir(tree)
        if live is None:
            return self.project(tree), set()
        changed = sync(tree / "compose", live)
        document = yaml.safe_load((live / COMPOSE_FILES[0]).read_text(encoding="utf-8")) or {}
        remount = services_mounting(document.get("services") or {}, changed) - set(APP_SERVICES)
        return A.ComposeProject(self.project_name, tuple(live / name for name in COMPOSE_FILES)), remount

    def _apply(self, tree: Path) -> None:
        """Bring an empty stack up; on a serving one, converge the rest and start the new containers."""
        project, remount = self._live_project(tree)
        if self.runner.dry_run:
            self.runner.note(
                "a serving stack is rolled: the other services converge, new api/worker containers start "
                "beside the serving ones (up --no-recreate --scale), the old ones stop after the gate"
            )
            self._converge(project)
            return
        generations = self.generations(tree)
        self._rolled = any(g.current or g.stale for g in generations.values())
        if not self._rolled:
            self._converge(project)
            return
        services = self.runner.run(A.compose_services(project), read_only=True, timeout_s=60).stdout.split()
        others = [s for s in services if s not in APP_SERVICES and s != EDGE_SERVICE]
        if remount & set(others):
            # Same path, new content (a changed postgresql.conf, redis.conf, env file): compose cannot see it.
            self.runner.run(
                A.compose_recreate(project, sorted(remount & set(others))), timeout_s=UP_WAIT_S + 60
            )
        if others:
            self._up(
                A.compose_up_services(project, others),
                "compose up of the data services and one-shots",
                f"{UP_HINT} (api and workers untouched)",
            )
            self._await_one_shots(tree, others)
        dead = [c for g in generations.values() for c in g.dead]
        if dead:
            self.runner.run(A.docker_rm([c.id for c in dead], force=True), check=False, timeout_s=120)
        before = {c.id for g in generations.values() for c in g.current + g.stale}
        counts = surge_counts(generations, {s: self.desired(s) for s in APP_SERVICES})
        if counts:
            self.runner.note(
                "rolling: "
                + ", ".join(
                    f"{s} {n - len(generations[s].current) - len(generations[s].stale)} new"
                    for s, n in counts.items()
                )
                + " beside the serving containers"
            )
            result = self.runner.run(
                A.compose_surge(project, counts, timeout_s=UP_WAIT_S), check=False, timeout_s=UP_WAIT_S + 60
            )
            if not result.ok:
                what = _last_line(result.stderr or result.stdout, result.returncode)
                self._abandon(tree, before)
                raise NotSwitched(f"the new containers did not become healthy: {what}")
        self._started = {
            c.id for g in self.generations(tree).values() for c in g.current if c.id not in before
        }
        if EDGE_SERVICE in services:
            self.runner.run(A.compose_up_no_deps(project, [EDGE_SERVICE]), timeout_s=UP_WAIT_S)

    def _await_one_shots(self, tree: Path, services: list[str]) -> None:
        """Wait for the one-shots (roles, migrations) of this converge; the roll needs them done."""
        one_shots = set(services) & one_shot_services(
            (tree / "compose" / COMPOSE_FILES[0]).read_text(encoding="utf-8")
        )
        latest: dict[str, ContainerState] = {}
        for container in self.engine_factory().containers(self.project_name):
            seen = latest.get(container.service)
            if container.service in one_shots and (seen is None or container.number > seen.number):
                latest[container.service] = container
        if not latest:
            return
        names = sorted(latest)
        result = self.runner.run(
            A.docker_wait([latest[n].id for n in names]), check=False, read_only=True, timeout_s=UP_WAIT_S
        )
        codes = result.stdout.split()
        failed = [f"{n} exited {code}" for n, code in zip(names, codes, strict=False) if code != "0"]
        if failed or len(codes) != len(names):
            raise SchedgenError(
                "one-shot service(s) failed: "
                + (", ".join(failed) or _last_line(result.stderr, result.returncode)),
                code="compose_up_failed",
                hint="see `schedgen logs SERVICE` for the one named; the api and workers were not touched",
            )

    def _abandon(self, tree: Path, before: set[str]) -> None:
        """Remove every app container that was not running before this deploy, and put the serving
        containers' image back under its tag (a rebuilt tag that failed must not be the next default)."""
        containers = [
            c
            for c in self.engine_factory().containers(self.project_name)
            if c.service in APP_SERVICES and c.id not in before
        ]
        running = [c.id for c in containers if c.state == "running"]
        if running:
            self.runner.run(A.docker_stop(running), check=False, timeout_s=STOP_WAIT_S)
        if containers:
            self.runner.run(A.docker_rm([c.id for c in containers], force=True), check=False, timeout_s=120)
        self._restore_serving_image(before)
        self.runner.note(f"removed {len(containers)} new container(s); the serving ones were not touched")

    def _restore_serving_image(self, serving: set[str]) -> None:
        from schedgen_ops.runtime.imagebuild import docker_tag, image_present

        if not self.service_image:
            return
        ids = {
            c.image_id
            for c in self.engine_factory().containers(self.project_name)
            if c.id in serving and c.service in APP_SERVICES and c.image_id
        }
        found = image_present(self.runner, self.service_image)
        if len(ids) == 1 and (found is None or found[0] not in ids):
            self.runner.run(docker_tag(ids.pop(), self.service_image))

    def _retire(self, containers: list[ContainerState], echo: Callable[[str], None]) -> None:
        """Stop (SIGTERM, each container's grace period) and remove containers of an earlier release."""
        if not containers:
            return
        ids = [c.id for c in containers]
        self.runner.run(A.docker_stop(ids), timeout_s=STOP_WAIT_S)
        self.runner.run(A.docker_rm(ids), timeout_s=120)
        echo(f"retired {', '.join(c.name for c in containers)}")

    def down(self, *, volumes: bool = False) -> None:
        self.runner.run(A.compose_down(self.project(), volumes=volumes), timeout_s=900)

    def scale(self, counts: Mapping[str, int]) -> None:
        self.runner.run(A.compose_scale(self.project(files_required=True), counts), timeout_s=900)
        self.desired_counts.update(counts)

    # ----------------------------------------------------------------------------------------- gate

    def _gate_exec(self, container: str, checks: str, timeout_s: float) -> dict[str, object]:
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
        result = self.runner.run(
            A.docker_exec(container, command), check=False, read_only=True, timeout_s=timeout_s * 2 + 60
        )
        try:
            report: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            report = {
                "ok": False,
                "check": "gate exec",
                "detail": _last_line(result.stderr or result.stdout, result.returncode),
            }
        return report

    def gate(
        self,
        tree: Path,
        *,
        canary: bool,
        timeout_s: float,
        echo: Callable[[str], None],
        staged: bool = False,
    ) -> GateReport:
        """The local gate, run inside the new api containers, with the switch in the middle of it.

        Every api container of this release must be ready; then the old workers stop (each finishes
        its job), the worker heartbeat and the canary upload go through a new api to the new workers,
        and only then do the old api containers stop. ``staged``: a failure before the first old
        container stops removes the new ones and raises `NotSwitched`.
        """
        self.tree = tree
        if self.runner.dry_run:
            extra = ", a canary upload parsed end to end" if canary else ""
            self.runner.note(
                f"health gate inside the new api containers: /readyz per replica, a worker{extra}"
            )
            return GateReport()
        report = GateReport()
        generations = self.generations(tree)
        api = generations["api"].current
        try:
            if not api:
                raise GateFailure("api ready", "no api container of this release is running")
            for container in api:
                answer = self._gate_exec(container.id, "ready", timeout_s)
                if not answer.get("ok"):
                    raise GateFailure(str(answer.get("check")), f"{container.name}: {answer.get('detail')}")
                report.checks[f"ready api-{container.number}"] = "ok"
                echo(f"gate: {container.name} ready")
        except GateFailure as exc:
            if not (staged and self._rolled):
                raise
            before = {c.id for g in generations.values() for c in g.current + g.stale} - self._started
            self._abandon(tree, before)
            raise NotSwitched(str(exc)) from exc
        # The switch: old workers first (the canary must reach new ones), old api replicas last.
        self._retire(generations["pdf-worker"].stale, echo)
        workers = generations["pdf-worker"].current
        if any(c.id in self._started for c in workers) or not workers:
            checks = "workers,canary" if canary else "workers"
        else:
            # Unchanged workers: an idle RQ worker heartbeats only every few minutes, so their liveness is
            # their Docker health (metrics port) and, when asked, the canary they parse.
            healthy = [c for c in workers if c.health in (None, "healthy")]
            if not healthy:
                raise GateFailure("workers alive", "no healthy worker container of this release")
            report.checks["workers"] = f"{len(healthy)} container(s) unchanged and healthy"
            checks = "canary" if canary else ""
        answer = self._gate_exec(api[0].id, checks, timeout_s) if checks else {"ok": True, "checks": {}}
        if not answer.get("ok"):
            raise GateFailure(str(answer.get("check")), str(answer.get("detail")))
        found = answer.get("checks")
        report.checks.update({str(k): str(v) for k, v in (found if isinstance(found, dict) else {}).items()})
        echo(f"gate: {report.checks.get('workers', '?')} worker(s)")
        if canary:
            report.canary_job = str(answer.get("canary_job"))
            events = answer.get("canary_events")
            report.canary_events = events if isinstance(events, int) else None
            echo(f"gate: canary job {report.canary_job} parsed ({report.canary_events} events)")
        self._retire(generations["api"].stale, echo)
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
        """Published api ports of the running replicas (edge off); a roll moves them within the range."""
        urls = {}
        for container in self.engine_factory().containers(self.project_name):
            if container.service != "api" or container.state != "running":
                continue
            for host, port in container.published:
                host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
                urls[f"api-{container.number}"] = f"http://{host}:{port}"
        return urls

    def endpoints(self) -> StackEndpoints:
        """The running api replicas' published ports (edge off; none without an engine); no data service."""
        try:
            replicas = self.urls()
        except SchedgenError:
            replicas = {}
        api_url = replicas[min(replicas)] if replicas else ""
        return StackEndpoints(
            self.name, tree=self.tree, running=bool(replicas), api_url=api_url, replica_urls=replicas
        )

    def logs(
        self, service: str, *, follow: bool = False, since: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        yield from self.runner.stream(
            A.compose_logs(self.project(), service, follow=follow, since=since, tail=tail)
        )

    def exec(self, service: str, command: list[str]) -> int:
        """In the lowest-numbered running replica (after a roll, #1 may be gone); #1 without an engine."""
        try:
            containers = self.engine_factory().containers(self.project_name)
        except SchedgenError:
            containers = []
        running = [c.number for c in containers if c.service == service and c.state == "running"]
        index = min(running) if running else 1
        return self.runner.run(
            A.compose_exec(self.project(), service, command, index=index), check=False, capture=False
        ).returncode


def _last_line(text: str, returncode: int) -> str:
    lines = text.strip().splitlines()
    return lines[-1] if lines else f"exit {returncode}"
