"""The local runtime: supervisord runs the rendered ``local/`` tree on this machine, no containers.

Layout under the project's ``.schedgen/``:
    run/active          symlink to the deployed tree (a release's ``tree/``); supervisord reads
                        ``run/active/local/supervisord.conf`` so switching releases is one rename
    run/supervisord.pid, run/supervisor.sock (XML-RPC control socket, mode 0700)
    data/postgres, data/redis, data/uploads, data/metrics   (never touched by deploy or rollback)
    logs/<program>.log  scale.json (desired api / pdf-worker count)

Every api and worker replica is a supervisord program slot in one of two colours (``api-blue-1..N`` /
``api-green-1..N``, likewise ``pdf-worker-<colour>-i``, up to the profile's max); scaling starts or stops
slots of the serving colour. The front door (Caddy, program ``frontdoor``) owns ports.api and sends
traffic to the serving api slots (runtime/frontdoor.py). Stopping a worker slot sends one SIGTERM to its
process, which lets each RQ worker finish its current job (stopwaitsecs is above the job timeout).

A deploy (and a rollback) on a running stack is blue/green (`local_bluegreen`): the other colour starts beside
the serving one from the new tree, passes the gate on its own ports, the front door reloads onto it, the
old api slots drain and stop, and workers are replaced one at a time. A gate failure stops only the new
colour and puts the previous configuration back: the serving processes are never touched.

The pieces, each in its module: `supervisor` (the XML-RPC client), `local_programs` (start/stop and wait,
or the dry-run notes), `local_tree` (what the rendered tree says: slots, ports, secrets), `local_machine`
(environment, binaries, directories), `scale_store` (scale.json), `postgres_roles` (the role bootstrap),
`local_bluegreen` (the switch) and `local_status` (status).
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import os
import shutil
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import SCALABLE_SERVICES, ServiceStatus
from schedgen_ops.runtime.endpoints import StackEndpoints, worker_metrics_urls
from schedgen_ops.runtime.frontdoor import FrontDoor, other
from schedgen_ops.runtime.gate import GateReport, run_gate
from schedgen_ops.runtime.local_bluegreen import blue_green
from schedgen_ops.runtime.local_machine import (
    external_urls,
    machine_env,
    prepare_dirs,
    sock_path,
    supervisord_binary,
)
from schedgen_ops.runtime.local_programs import Programs, wait_tcp
from schedgen_ops.runtime.local_status import stack_status
from schedgen_ops.runtime.local_tree import LocalTree
from schedgen_ops.runtime.postgres_roles import bootstrap_postgres
from schedgen_ops.runtime.postgres_server import PostgresServer
from schedgen_ops.runtime.runner import Runner
from schedgen_ops.runtime.scale_store import ScaleStore
from schedgen_ops.runtime.supervisor import (
    RUNNING_STATES,
    SupervisorClient,
    daemon_pid,
    descendants,
    wait_gone,
)

SERVICES = SCALABLE_SERVICES
DATA_PROGRAMS = ("postgres", "redis")


class LocalRuntime:
    """Operate the supervisord-managed stack of one project directory."""

    name = "local"

    def __init__(
        self, project_dir: Path, runner: Runner | None = None, environ: Mapping[str, str] | None = None
    ):
        self.project = project_dir.resolve()
        layout = ProjectLayout.of(self.project)
        self.state = layout.state
        self.run_dir = layout.run
        self.logs_dir = layout.logs
        self.data_dir = layout.data
        self.active = self.run_dir / "active"
        self.runner = runner or Runner()
        self.environ = dict(os.environ if environ is None else environ)
        self.frontdoor = FrontDoor(self.run_dir, self.project, self.runner)
        self.supervisor = SupervisorClient(self.sock)
        self.programs = Programs(self.supervisor, self.runner, self.logs_dir)
        self.scale_store = ScaleStore(self.state)

    # ------------------------------------------------------------------------------------ paths & env

    @property
    def conf(self) -> Path:
        return self.active / "local" / "supervisord.conf"

    @property
    def sock(self) -> Path:
        return sock_path(self.run_dir, self.project)

    def external_urls(self) -> dict[str, str]:
        """SCHEDGEN_DATABASE_URL / SCHEDGEN_REDIS_URL given in the environment: use them, run no server."""
        return external_urls(self.environ)

    def machine_env(self) -> dict[str, str]:
        """supervisord's environment: machine facts the rendered (machine-independent) config refers to."""
        return machine_env(self.environ, self.sock, self.frontdoor.admin)

    # ------------------------------------------------------------------------------------ supervisord

    def rpc(self) -> Any:
        """The raw XML-RPC ``supervisor`` namespace (tests and calls `SupervisorClient` does not wrap)."""
        return self.supervisor.proxy()

    def supervisord_pid(self) -> int | None:
        return daemon_pid(self.run_dir / "supervisord.pid")

    def is_running(self) -> bool:
        return self.supervisord_pid() is not None and self.supervisor.is_up()

    def active_tree(self) -> Path | None:
        return Path(os.readlink(self.active)) if self.active.is_symlink() else None

    def point_active(self, tree: Path) -> None:
        conf = tree / "local" / "supervisord.conf"
        if not conf.is_file():
            raise SchedgenError(
                f"{conf} is missing: the tree was not rendered for the local target",
                code="not_rendered",
                hint="run `schedgen render --target local` (deploy does it for you)",
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.run_dir / "active.tmp"
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(tree.resolve())
        os.replace(tmp, self.active)

    def _prepare_dirs(self) -> None:
        dirs = [self.run_dir, self.logs_dir, *(self.data_dir / d for d in ("redis", "uploads", "metrics"))]
        local_postgres = "SCHEDGEN_DATABASE_URL" not in self.external_urls()
        prepare_dirs(self.project, self.state, dirs, self.data_dir, local_postgres=local_postgres)

    def _initdb(self, tree: Path) -> None:
        if "SCHEDGEN_DATABASE_URL" in self.external_urls():
            return
        data = self.data_dir / "postgres"
        server = PostgresServer(data, self.port(tree, "postgres"), {}, self.logs_dir / "initdb.log")
        server.initdb()

    def _start_supervisord(self) -> None:
        self.runner.run(A.supervisord_start(self.conf, supervisord_binary()), env=self.machine_env())
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.is_running():
                return
            time.sleep(0.1)
        raise SchedgenError(
            "supervisord did not come up within 20s",
            code="supervisord_failed",
            hint=f"see {self.logs_dir}/supervisord.log",
        )

    # ------------------------------------------------------------------------------------ tree facts

    def _tree(self, tree: Path | None = None) -> LocalTree:
        return LocalTree(tree or self.active)

    def slots(self, service: str, tree: Path | None = None, colour: str | None = None) -> list[str]:
        """Program names of a service's slots of one colour (default: the serving one), in order."""
        return self._tree(tree).slots(service, colour or self.frontdoor.live())

    def keys(self, service: str, tree: Path | None = None, colour: str | None = None) -> list[str]:
        """supervisord process names (``group:program``) of a service's slots of one colour."""
        colour = colour or self.frontdoor.live()
        return [f"{service}-{colour}:{name}" for name in self.slots(service, tree, colour)]

    def port(self, tree: Path, program: str) -> int:
        return LocalTree(tree).port(program)

    def api_urls(self, tree: Path | None = None, colour: str | None = None) -> dict[str, str]:
        """Each api slot's own (internal) address; the public one is `public_url`."""
        tree = tree or self.active
        return {s: f"http://127.0.0.1:{self.port(tree, s)}" for s in self.slots("api", tree, colour)}

    def public_url(self, tree: Path | None = None) -> str:
        """The front door's address: what users and clients call (from the rendered Caddyfile)."""
        return self._tree(tree).public_url()

    def gate(self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]) -> GateReport:
        """The full HTTP gate against every desired api slot's port on this machine."""
        if self.runner.dry_run:
            extra = ", a canary upload parsed end to end" if canary else ""
            self.runner.note(f"health gate: /readyz on every api replica, a worker heartbeat{extra}")
            return GateReport()
        desired = self.desired(tree)["api"]
        urls = list(self.api_urls(tree).values())[: max(1, desired)]
        token = self.app_env(tree)["SCHEDGEN_OPS_TOKEN"]
        return run_gate(urls, token, timeout_s=timeout_s, with_canary=canary, echo=echo)

    def urls(self) -> dict[str, str]:
        """The public address (the front door); each replica's internal address is in `status`."""
        if not self.active.exists():
            return {}
        return {"api": self.public_url()}

    def endpoints(self) -> StackEndpoints:
        """What the active tree and the running supervisord say; each fact is best-effort (a broken or
        half-written tree leaves that fact empty rather than failing the command that asked)."""
        running = self.is_running()
        data = self.data_dir if self.data_dir.is_dir() else None
        uploads = self.data_dir / "uploads"
        base = StackEndpoints(
            self.name,
            running=running,
            data_dir=data,
            uploads_dir=uploads if uploads.is_dir() else None,
            supervisor_sock=self.sock if running else None,
        )
        tree = self.active_tree() if self.active.exists() else None
        if tree is None:
            return base

        def fact(read: Callable[[], Any], empty: Any) -> Any:
            try:
                return read()
            except (OSError, ValueError, KeyError, SchedgenError, configparser.Error):
                return empty

        return dataclasses.replace(
            base,
            tree=tree,
            api_url=fact(lambda: self.public_url(tree), ""),
            replica_urls=fact(lambda: self.api_urls(tree), {}),
            ops_env=fact(lambda: self.secrets(tree), {}),
            app_env=fact(lambda: self.app_env(tree), {}),
            worker_metrics_urls=fact(lambda: worker_metrics_urls(tree), ()),
        )

    def secrets(self, tree: Path | None = None) -> dict[str, str]:
        """What operator-side commands (backup, restore, health, checklist) connect with: the database
        owner role and Redis's ``default`` (backup) user, never the app's credentials or a superuser."""
        return self._secret_file(tree, "ops")

    def app_env(self, tree: Path | None = None) -> dict[str, str]:
        """The service's own secret environment (app.env: its role, Redis user and token)."""
        return self._secret_file(tree, "app")

    def _secret_file(self, tree: Path | None, stem: str) -> dict[str, str]:
        values = self._tree(tree).secret_file(stem)
        values.update(self.external_urls())
        return values

    def desired(self, tree: Path | None = None) -> dict[str, int]:
        """Desired replicas: scale.json, else the rendered defaults; capped to the tree's slots."""
        tree = tree or self.active
        wanted = self._tree(tree).default_replicas()
        wanted.update(self.scale_store.read())
        return {service: max(0, min(n, len(self.slots(service, tree)))) for service, n in wanted.items()}

    # ------------------------------------------------------------------------------------ processes

    def ensure_data(self, tree: Path) -> None:
        """Postgres and Redis (unless external) and Prometheus (when installed), each started once."""
        external = self.external_urls()
        if "SCHEDGEN_DATABASE_URL" not in external:
            self.programs.start(["postgres"])
            if not self.runner.dry_run:
                port = self.port(tree, "postgres")
                wait_tcp(port, "postgres")
                bootstrap_postgres(tree, port, self.data_dir / "postgres", self.environ, self.runner)
        if "SCHEDGEN_REDIS_URL" not in external:
            self.programs.start(["redis"])
            if not self.runner.dry_run:
                wait_tcp(self.port(tree, "redis"), "redis")
        if shutil.which("prometheus"):
            with contextlib.suppress(SchedgenError):
                self.programs.start(["prometheus"])

    def _ensure_running(self, tree: Path) -> None:
        """Data services first, then the desired api / worker slots and the front door in front of them."""
        self.ensure_data(tree)
        self._apply_scale(tree, self.desired(tree))
        leftovers = [k for s in SERVICES for k in self.keys(s, tree, other(self.frontdoor.live()))]
        self.programs.stop(leftovers)  # an interrupted deploy's other colour

    def wait_ready(self, tree: Path, slots: list[str], timeout_s: float = 120) -> None:
        """Each api slot answers /readyz (before the front door sends it anything)."""
        urls = {slot: f"http://127.0.0.1:{self.port(tree, slot)}" for slot in slots}
        self.programs.wait_ready(urls, timeout_s)

    def switch(self, tree: Path, ports: list[int]) -> None:
        """Point the front door at ``ports`` (graceful reload), starting it if it does not run."""
        changed = self.frontdoor.write_upstreams(ports)
        if self.runner.dry_run:
            return
        if self.supervisor.state("frontdoor") not in RUNNING_STATES:
            self.programs.start(["frontdoor"])
            wait_tcp(int(self.public_url(tree).rsplit(":", 1)[1]), "the front door")
        elif changed:
            self.frontdoor.reload(tree / "local" / "Caddyfile", self.machine_env())

    def _apply_scale(self, tree: Path, counts: Mapping[str, int]) -> None:
        """Serving colour: start new slots, wait until ready, switch the front door, then stop the extra ones.

        Slots leave the front door's rotation before they are stopped, and join it only once ready, so
        scaling the api drops no request; workers stop with a warm shutdown (their job finishes first).
        """
        start: list[str] = []
        stop: list[str] = []
        for service, count in counts.items():
            keys = self.keys(service, tree)
            start += keys[:count]
            stop += keys[count:]
        self.programs.start(start)
        api_count = counts.get("api", self.desired(tree)["api"])
        serving = self.slots("api", tree)[:api_count]
        self.wait_ready(tree, serving)
        self.switch(tree, [self.port(tree, slot) for slot in serving])
        self.programs.stop(stop)

    # ------------------------------------------------------------------------------------ interface

    def up(self, tree: Path) -> None:
        """Start everything from ``tree``; when already running, converge (idempotent)."""
        tree = tree.resolve()
        if self.runner.dry_run:
            self.runner.note(f"start supervisord on {tree}/local/supervisord.conf (or converge if running)")
            self.runner.note(
                "start postgres, redis, then api x{api}, pdf-worker x{pdf-worker}".format_map(
                    self.desired(tree)
                )
            )
            return
        self.converge(tree, replace=False)

    def converge(
        self,
        tree: Path,
        *,
        replace: bool,
        canary: bool = False,
        timeout_s: float = 120,
        echo: Callable[[str], None] = lambda _: None,
        full_gate: bool = False,
    ) -> GateReport:
        """The one way the stack comes to run ``tree`` (``up``, ``deploy``, ``rollback`` all end here): a
        stopped stack starts cold, a running one on another tree (or any, with ``replace``) is switched
        blue/green, one already on ``tree`` gets its missing programs started. ``full_gate`` adds the
        HTTP gate (workers, canary) to each new api slot's readiness."""
        self._prepare_dirs()
        if not self.is_running():
            self.point_active(tree)
            self._initdb(tree)
            self._start_supervisord()
            self._ensure_running(tree)
            return (
                self.gate(tree, canary=canary, timeout_s=timeout_s, echo=echo) if full_gate else GateReport()
            )
        if replace or self.active_tree() != tree:
            return blue_green(self, tree, canary=canary, timeout_s=timeout_s, echo=echo, full_gate=full_gate)
        self._ensure_running(tree)
        return GateReport()

    def deploy(self, tree: Path) -> None:
        """Apply ``tree``: blue/green when the stack runs (new slots gated on readiness only)."""
        self.deploy_gated(tree, canary=False, timeout_s=120, echo=lambda _: None, full_gate=False)

    def rollback(self, tree: Path) -> None:
        """Put an earlier tree back the same way as a deploy; data directories are never touched."""
        self.deploy(tree)

    def deploy_gated(
        self,
        tree: Path,
        *,
        canary: bool,
        timeout_s: float,
        echo: Callable[[str], None],
        full_gate: bool = True,
    ) -> GateReport:
        """Start ``tree`` beside the serving release, gate it, then switch (`converge` with ``replace``).

        Raises `GateFailure` (or `SchedgenError`) with the serving replicas untouched and the previous
        configuration back in supervisord when the new colour does not pass.
        """
        tree = tree.resolve()
        if self.runner.dry_run:
            live = self.frontdoor.live()
            self.runner.note(f"point {self.active} at {tree}; reload supervisord's configuration")
            self.runner.note(f"start api-{other(live)} x{self.desired(tree)['api']} beside api-{live}")
            self.gate(tree, canary=canary, timeout_s=timeout_s, echo=echo)
            self.runner.note("front door -> the new api slots (graceful reload); stop the old ones")
            self.runner.note("replace pdf-worker slots one at a time (each finishes its job)")
            return GateReport()
        return self.converge(
            tree, replace=True, canary=canary, timeout_s=timeout_s, echo=echo, full_gate=full_gate
        )

    def down(self, *, volumes: bool = False) -> None:
        """Stop every program (workers finish their current job), then supervisord itself."""
        pid = self.supervisord_pid()
        if pid is not None and self.sock.exists():
            children = descendants(pid)
            if self.runner.dry_run:
                self.runner.note("stop all programs and shut supervisord down")
            else:
                with contextlib.suppress(OSError, xmlrpc.client.Error):
                    self.supervisor.shutdown()
                wait_gone([pid, *children], timeout_s=60)
        if volumes and not self.runner.dry_run:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self.scale_store.clear()
        elif volumes:
            self.runner.note(f"delete {self.data_dir}")

    def scale(self, counts: Mapping[str, int]) -> None:
        tree = self.active
        for service, count in counts.items():
            available = len(self.slots(service, tree))
            if service not in SERVICES:
                raise SchedgenError(
                    f"cannot scale {service!r}", code="bad_service", hint="use api or pdf-worker", exit_code=2
                )
            if count > available:
                raise SchedgenError(
                    f"{service}={count} exceeds the {available} slots rendered for this release",
                    code="scale_out_of_bounds",
                    hint="raise the profile's max_replicas and deploy",
                )
        if not self.runner.dry_run:
            self.scale_store.save(counts)
        if self.is_running():
            self._apply_scale(tree, counts)

    def status(self) -> list[ServiceStatus]:
        if not self.is_running():
            return []
        return stack_status(self, self.active)

    def external_programs(self) -> set[str]:
        ext = self.external_urls()
        return {
            p for p, k in (("postgres", "SCHEDGEN_DATABASE_URL"), ("redis", "SCHEDGEN_REDIS_URL")) if k in ext
        }

    def log_files(self, service: str) -> list[Path]:
        if service in SERVICES:
            live = self.frontdoor.live()
            names = (
                [n for c in (live, other(live)) for n in self.slots(service, colour=c)]
                if self.active.exists()
                else []
            )
            return [self.logs_dir / f"{n}.log" for n in names if (self.logs_dir / f"{n}.log").exists()]
        path = self.logs_dir / f"{service}.log"
        return [path] if path.exists() else []

    def logs(
        self, service: str, *, follow: bool = False, since: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        from schedgen_ops.runtime.logview import follow_files, read_files

        files = self.log_files(service)
        if not files and service not in (*SERVICES, *DATA_PROGRAMS, "prometheus", "supervisord", "frontdoor"):
            raise SchedgenError(
                f"no service {service!r}",
                code="bad_service",
                hint="use api, pdf-worker, frontdoor, postgres, redis",
                exit_code=2,
            )
        yield from read_files(files, since=since, tail=tail)
        if follow:
            yield from follow_files(files)

    def exec(self, service: str, command: list[str]) -> int:
        """Run ``command`` with a service's environment (settings and secrets), in the foreground."""
        import subprocess

        from supervisor.datatypes import dict_of_key_value_pairs

        slots = self.slots(service) if service in SERVICES else []
        if not slots:
            raise SchedgenError(
                f"cannot exec in {service!r}", code="bad_service", hint="use api or pdf-worker", exit_code=2
            )
        raw = self._tree().environment(slots[0])
        env = dict(self.environ)
        env.update(self.app_env())
        env.update(dict_of_key_value_pairs(raw))
        self.runner.note("exec in " + service + ": " + " ".join(command))
        return subprocess.call(command, env=env)
