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

A deploy (and a rollback) on a running stack is blue/green (`_blue_green`): the other colour starts beside
the serving one from the new tree, passes the gate on its own ports, the front door reloads onto it, the
old api slots drain and stop, and workers are replaced one at a time. A gate failure stops only the new
colour and puts the previous configuration back: the serving processes are never touched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import socket
import sys
import time
import xmlrpc.client
from collections.abc import Callable, Iterator, Mapping
from configparser import RawConfigParser
from pathlib import Path
from typing import Any

import psutil
from supervisor.xmlrpc import SupervisorTransport

from schedgen_ops.config.roles import PG_SUPERUSER
from schedgen_ops.config.secrets import parse_env_file
from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import NotSwitched, ProcessStatus, ServiceStatus
from schedgen_ops.runtime.dataservices import (
    SERVICE_USER,
    PostgresServer,
    find_postgres_bindir,
    find_redis_server,
    running_as_root,
)
from schedgen_ops.runtime.frontdoor import FrontDoor, find_caddy, other
from schedgen_ops.runtime.gate import GateFailure, GateReport, run_gate, wait_ready
from schedgen_ops.runtime.runner import Runner

SERVICES = ("api", "pdf-worker")
DATA_PROGRAMS = ("postgres", "redis")
_SOCK_MAX = 100  # AF_UNIX paths are limited to 107 bytes
_HBA_MARK = "# schedgen-managed pg_hba.conf"
_RUNNING = {"RUNNING", "STARTING", "BACKOFF"}


class LocalRuntime:
    """Operate the supervisord-managed stack of one project directory."""

    name = "local"

    def __init__(
        self, project_dir: Path, runner: Runner | None = None, environ: Mapping[str, str] | None = None
    ):
        self.project = project_dir.resolve()
        self.state = self.project / ".schedgen"
        self.run_dir = self.state / "run"
        self.logs_dir = self.state / "logs"
        self.data_dir = self.state / "data"
        self.active = self.run_dir / "active"
        self.runner = runner or Runner()
        self.environ = dict(os.environ if environ is None else environ)
        self.frontdoor = FrontDoor(self.run_dir, self.project, self.runner)

    # ------------------------------------------------------------------------------------ paths & env

    @property
    def conf(self) -> Path:
        return self.active / "local" / "supervisord.conf"

    @property
    def sock(self) -> Path:
        path = self.run_dir / "supervisor.sock"
        if len(str(path)) <= _SOCK_MAX:
            return path
        digest = hashlib.sha256(str(self.project).encode()).hexdigest()[:16]
        return Path("/tmp") / f"schedgen-{digest}.sock"

    def external_urls(self) -> dict[str, str]:
        """SCHEDGEN_DATABASE_URL / SCHEDGEN_REDIS_URL given in the environment: use them, run no server."""
        return {k: v for k in ("SCHEDGEN_DATABASE_URL", "SCHEDGEN_REDIS_URL") if (v := self.environ.get(k))}

    def machine_env(self) -> dict[str, str]:
        """supervisord's environment: machine facts the rendered (machine-independent) config refers to."""
        env = {
            k: v for k, v in self.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
        }
        external = self.external_urls()
        env.update(external)
        env["SCHEDGEN_SUPERVISOR_SOCK"] = str(self.sock)
        env["SCHEDGEN_PYTHON"] = sys.executable
        env["SCHEDGEN_PG_USER"] = SERVICE_USER if running_as_root() else pwd.getpwuid(os.getuid()).pw_name
        env["SCHEDGEN_PG_BINDIR"] = (
            str(find_postgres_bindir()) if "SCHEDGEN_DATABASE_URL" not in external else "/nonexistent"
        )
        env["SCHEDGEN_REDIS_SERVER"] = (
            str(find_redis_server()) if "SCHEDGEN_REDIS_URL" not in external else "redis-server"
        )
        env["SCHEDGEN_PROMETHEUS"] = shutil.which("prometheus", path=env.get("PATH")) or "prometheus"
        env["SCHEDGEN_CADDY"] = find_caddy(env.get("PATH"))
        env["SCHEDGEN_FRONTDOOR_ADMIN"] = self.frontdoor.admin
        return env

    # ------------------------------------------------------------------------------------ supervisord

    def rpc(self) -> Any:
        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def supervisord_pid(self) -> int | None:
        try:
            pid = int((self.run_dir / "supervisord.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def is_running(self) -> bool:
        if self.supervisord_pid() is None or not self.sock.exists():
            return False
        try:
            return bool(self.rpc().getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Error):
            return False

    def active_tree(self) -> Path | None:
        return Path(os.readlink(self.active)) if self.active.is_symlink() else None

    def _point_active(self, tree: Path) -> None:
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
        for path in (
            self.run_dir,
            self.logs_dir,
            self.data_dir / "redis",
            self.data_dir / "uploads",
            self.data_dir / "metrics",
        ):
            path.mkdir(parents=True, exist_ok=True)
        if running_as_root() and "SCHEDGEN_DATABASE_URL" not in self.external_urls():
            # Postgres runs as nobody: every parent of its data directory must be traversable.
            for path in (self.state, self.data_dir):
                path.chmod(path.stat().st_mode | 0o111)
            probe = self.project
            while probe != probe.parent:
                if not probe.stat().st_mode & 0o001:
                    raise SchedgenError(
                        f"{probe} is not traversable by {SERVICE_USER!r}, so the local Postgres (which "
                        "cannot run as root) cannot reach its data under .schedgen/",
                        code="postgres_data_dir_unreachable",
                        hint=f"chmod o+x {probe}, or use a project directory under /srv or /tmp, or set "
                        "SCHEDGEN_DATABASE_URL to an external Postgres",
                    )
                probe = probe.parent

    def _initdb(self, tree: Path) -> None:
        if "SCHEDGEN_DATABASE_URL" in self.external_urls():
            return
        data = self.data_dir / "postgres"
        server = PostgresServer(data, self._port(tree, "postgres"), {}, self.logs_dir / "initdb.log")
        server.initdb()

    def _start_supervisord(self) -> None:
        env = self.machine_env()
        # The supervisord installed with this toolkit (an unactivated virtualenv has it beside python).
        beside = Path(sys.executable).parent / "supervisord"
        binary = str(beside) if beside.exists() else "supervisord"
        self.runner.run(A.supervisord_start(self.conf, binary), env=env)
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

    def _conf_parser(self, tree: Path | None = None) -> RawConfigParser:
        parser = RawConfigParser(strict=False)
        parser.read((tree or self.active) / "local" / "supervisord.conf")
        return parser

    def slots(self, service: str, tree: Path | None = None, colour: str | None = None) -> list[str]:
        """Program names of a service's slots of one colour (default: the serving one), in order."""
        parser = self._conf_parser(tree)
        section = f"group:{service}-{colour or self.frontdoor.live()}"
        if not parser.has_section(section):
            return []
        programs = [p.strip() for p in parser.get(section, "programs").split(",") if p.strip()]
        return sorted(programs, key=lambda p: int(p.rsplit("-", 1)[1]))

    def keys(self, service: str, tree: Path | None = None, colour: str | None = None) -> list[str]:
        """supervisord process names (``group:program``) of a service's slots of one colour."""
        colour = colour or self.frontdoor.live()
        return [f"{service}-{colour}:{name}" for name in self.slots(service, tree, colour)]

    def _port(self, tree: Path, program: str) -> int:
        parser = self._conf_parser(tree)
        command = parser.get(f"program:{program}", "command")
        match = re.search(r"(?:-p|--port) (\d+)", command)
        if not match:
            raise SchedgenError(f"no port in the {program} command of {tree}", code="bad_tree")
        return int(match.group(1))

    def api_urls(self, tree: Path | None = None, colour: str | None = None) -> dict[str, str]:
        """Each api slot's own (internal) address; the public one is `public_url`."""
        tree = tree or self.active
        return {s: f"http://127.0.0.1:{self._port(tree, s)}" for s in self.slots("api", tree, colour)}

    def public_url(self, tree: Path | None = None) -> str:
        """The front door's address: what users and clients call (from the rendered Caddyfile)."""
        text = ((tree or self.active) / "local" / "Caddyfile").read_text(encoding="utf-8")
        line = next((ln for ln in text.splitlines() if re.match(r"https?://", ln)), "")
        sites = re.findall(r"(https?)://([^\s,{]*?):(\d+)", line)
        if not sites:
            raise SchedgenError(f"no site address in {tree or self.active}/local/Caddyfile", code="bad_tree")
        scheme, host, port = next((s for s in sites if s[1] == "127.0.0.1"), sites[0])
        return f"{scheme}://{host or '127.0.0.1'}:{port}"

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

    def secrets(self, tree: Path | None = None) -> dict[str, str]:
        """What operator-side commands (backup, restore, health, checklist) connect with: the database
        owner role and Redis's ``default`` (backup) user, never the app's credentials or a superuser."""
        return self._secret_file(tree, "ops")

    def app_env(self, tree: Path | None = None) -> dict[str, str]:
        """The service's own secret environment (app.env: its role, Redis user and token)."""
        return self._secret_file(tree, "app")

    def _secret_file(self, tree: Path | None, stem: str) -> dict[str, str]:
        path = (tree or self.active) / "local" / "secrets" / f"{stem}.env"
        values = parse_env_file(path.read_text(encoding="utf-8"))
        values.update(self.external_urls())
        return values

    def desired(self, tree: Path | None = None) -> dict[str, int]:
        """Desired replicas: scale.json, else the rendered defaults; capped to the tree's slots."""
        tree = tree or self.active
        facts = (
            json.loads((tree / "render.json").read_text()).get("facts", {})
            if (tree / "render.json").exists()
            else {}
        )
        wanted = {
            "api": int(facts.get("api_replicas", 1)),
            "pdf-worker": int(facts.get("worker_replicas", 1)),
        }
        with contextlib.suppress(OSError, ValueError):
            wanted.update({k: int(v) for k, v in json.loads((self.state / "scale.json").read_text()).items()})
        return {service: max(0, min(n, len(self.slots(service, tree)))) for service, n in wanted.items()}

    def _save_desired(self, counts: Mapping[str, int]) -> None:
        current: dict[str, int] = {}
        with contextlib.suppress(OSError, ValueError):
            current = json.loads((self.state / "scale.json").read_text())
        current.update(counts)
        (self.state / "scale.json").write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")

    # ------------------------------------------------------------------------------------ processes

    def _start_error(self, name: str, why: str) -> SchedgenError:
        log = self.logs_dir / f"{name.split(':')[-1]}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return SchedgenError(
            f"{name} failed to start ({why}): {' | '.join(tail)}", code="process_failed", hint=f"see {log}"
        )

    def _start(self, name: str) -> None:
        self._start_many([name])

    def _start_many(self, names: list[str], timeout_s: float = 120) -> None:
        """Start processes together and wait until each is RUNNING (past its startsecs)."""
        if not names:
            return
        if self.runner.dry_run:
            for name in names:
                self.runner.note(f"start {name}")
            return
        rpc = self.rpc()
        for name in names:
            try:
                rpc.startProcess(name, False)
            except xmlrpc.client.Fault as fault:
                if "ALREADY_STARTED" not in fault.faultString:
                    raise self._start_error(name, fault.faultString) from fault
        pending = set(names)
        deadline = time.monotonic() + timeout_s
        while pending:
            infos = rpc.getAllProcessInfo()
            states = {f"{p['group']}:{p['name']}": p["statename"] for p in infos}
            states.update({p["name"]: p["statename"] for p in infos if p["group"] == p["name"]})
            for name in list(pending):
                if states.get(name) == "RUNNING":
                    pending.discard(name)
                elif states.get(name) in ("FATAL", "STOPPED", "EXITED"):
                    raise self._start_error(name, states[name])
            if pending and time.monotonic() > deadline:
                raise self._start_error(sorted(pending)[0], f"not running after {timeout_s:.0f}s")
            if pending:
                time.sleep(0.1)

    def _stop_many(self, names: list[str], timeout_s: float = 600) -> None:
        """Stop processes concurrently and wait until each has exited (workers finish their job)."""
        if not names:
            return
        if self.runner.dry_run:
            for name in names:
                self.runner.note(f"stop {name}")
            return
        rpc = self.rpc()
        for name in names:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcess(name, False)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {f"{p['group']}:{p['name']}": p["statename"] for p in rpc.getAllProcessInfo()}
            states.update(
                {p["name"]: p["statename"] for p in rpc.getAllProcessInfo() if p["group"] == p["name"]}
            )
            if all(states.get(n) not in ("RUNNING", "STARTING", "BACKOFF", "STOPPING") for n in names):
                return
            time.sleep(0.2)
        raise SchedgenError(f"{', '.join(names)} did not stop within {timeout_s:.0f}s", code="stop_timeout")

    def _wait_tcp(self, port: int, what: str, timeout_s: float = 30) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                return
            time.sleep(0.1)
        raise SchedgenError(
            f"{what} did not listen on port {port} within {timeout_s:.0f}s", code="start_timeout"
        )

    def _bootstrap_postgres(self, tree: Path) -> None:
        """Roles and database from roles.sql as the superuser, then passwords required (idempotent).

        The superuser's password is its own secret (POSTGRES_SUPERUSER_PASSWORD), never the app's. A stack
        bootstrapped before roles existed gave the superuser the owner's password: that one is tried second,
        then replaced.
        """
        import psycopg
        from psycopg import sql

        port = self._port(tree, "postgres")
        values = parse_env_file(
            (tree / "local" / "secrets" / "postgres-init.env").read_text(encoding="utf-8")
        )
        superuser_pw = values["PGPASSWORD"]
        candidates = [superuser_pw, values["SCHEDGEN_PG_OWNER_PASSWORD"]]
        admin = f"host=127.0.0.1 port={port} user={PG_SUPERUSER} dbname=postgres connect_timeout=5"
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = _connect_first(admin, candidates)
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        with conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(PG_SUPERUSER), sql.Literal(superuser_pw)
                )
            )
        env = {k: v for k, v in self.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
        env.update(values)
        self.runner.run(
            psql_script_argv(find_postgres_bindir(), port, tree / "local" / "roles.sql"),
            env=env,
            timeout_s=60,
        )
        hba = self.data_dir / "postgres" / "pg_hba.conf"
        if not hba.read_text().startswith(_HBA_MARK):
            owner = hba.stat()
            hba.write_text(
                f"{_HBA_MARK}: TCP on loopback only, passwords required (no unix sockets are opened)\n"
                "host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"
            )
            os.chown(hba, owner.st_uid, owner.st_gid)
            with _connect_first(admin, [superuser_pw]) as reload:
                reload.execute("SELECT pg_reload_conf()")

    def _ensure_data(self, tree: Path) -> None:
        """Postgres and Redis (unless external) and Prometheus (when installed), each started once."""
        external = self.external_urls()
        if "SCHEDGEN_DATABASE_URL" not in external:
            self._start("postgres")
            if not self.runner.dry_run:
                self._wait_tcp(self._port(tree, "postgres"), "postgres")
                self._bootstrap_postgres(tree)
        if "SCHEDGEN_REDIS_URL" not in external:
            self._start("redis")
            if not self.runner.dry_run:
                self._wait_tcp(self._port(tree, "redis"), "redis")
        if shutil.which("prometheus"):
            with contextlib.suppress(SchedgenError):
                self._start("prometheus")

    def _ensure_running(self, tree: Path) -> None:
        """Data services first, then the desired api / worker slots and the front door in front of them."""
        self._ensure_data(tree)
        self._apply_scale(tree, self.desired(tree))
        leftovers = [k for s in SERVICES for k in self.keys(s, tree, other(self.frontdoor.live()))]
        self._stop_many(leftovers)  # an interrupted deploy's other colour

    def _wait_ready(self, tree: Path, slots: list[str], timeout_s: float = 120) -> None:
        """Each api slot answers /readyz (before the front door sends it anything)."""
        if self.runner.dry_run or not slots:
            return
        import httpx

        with httpx.Client() as client:
            for slot in slots:
                try:
                    wait_ready(client, f"http://127.0.0.1:{self._port(tree, slot)}", timeout_s)
                except GateFailure as exc:
                    raise self._start_error(slot, exc.detail) from exc

    def _switch(self, tree: Path, ports: list[int]) -> None:
        """Point the front door at ``ports`` (graceful reload), starting it if it does not run."""
        changed = self.frontdoor.write_upstreams(ports)
        if self.runner.dry_run:
            return
        state = self.rpc().getProcessInfo("frontdoor")["statename"]
        if state not in _RUNNING:
            self._start("frontdoor")
            self._wait_tcp(int(self.public_url(tree).rsplit(":", 1)[1]), "the front door")
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
        self._start_many(start)
        api_count = counts.get("api", self.desired(tree)["api"])
        serving = self.slots("api", tree)[:api_count]
        self._wait_ready(tree, serving)
        self._switch(tree, [self._port(tree, slot) for slot in serving])
        self._stop_many(stop)

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
        self._prepare_dirs()
        if self.is_running():
            if self.active_tree() != tree:
                self.deploy(tree)
                return
            self._ensure_running(tree)
            return
        self._point_active(tree)
        self._initdb(tree)
        self._start_supervisord()
        self._ensure_running(tree)

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
        """Start ``tree`` beside the serving release, gate it, then switch (the optional Runtime hook).

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
        if not self.is_running():
            self.up(tree)
            return (
                self.gate(tree, canary=canary, timeout_s=timeout_s, echo=echo) if full_gate else GateReport()
            )
        return self._blue_green(tree, canary=canary, timeout_s=timeout_s, echo=echo, full_gate=full_gate)

    def _reload_groups(self, keep: set[str]) -> list[str]:
        """supervisord re-reads the active conf; changed groups are re-added, except the ``keep`` ones
        (the serving colour keeps its running definition). Returns the kept groups that changed."""
        rpc = self.rpc()
        added, changed, removed = rpc.reloadConfig()[0]
        for group in removed + changed:
            if group in keep:
                continue
            names = [f"{group}:{p['name']}" for p in rpc.getAllProcessInfo() if p["group"] == group]
            self._stop_many(names)
            rpc.removeProcessGroup(group)
        for group in changed + added:
            if group not in keep:
                rpc.addProcessGroup(group)
        return [g for g in changed if g in keep]

    def _running_keys(self, group: str) -> list[str]:
        infos = [p for p in self.rpc().getAllProcessInfo() if p["group"] == group]
        infos = [p for p in infos if p["statename"] in _RUNNING]
        return [f"{group}:{p['name']}" for p in sorted(infos, key=lambda p: int(p["name"].rsplit("-", 1)[1]))]

    def _refresh_group(self, group: str) -> None:
        """Re-add a stopped group so its next start uses the active conf's definition."""
        rpc = self.rpc()
        with contextlib.suppress(xmlrpc.client.Fault):
            rpc.removeProcessGroup(group)
        with contextlib.suppress(xmlrpc.client.Fault):
            rpc.addProcessGroup(group)

    def _blue_green(
        self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None], full_gate: bool
    ) -> GateReport:
        old_tree = self.active_tree()
        old, new = self.frontdoor.live(), other(self.frontdoor.live())
        serving = {f"{service}-{old}" for service in SERVICES} | {"frontdoor"}
        want = self.desired(tree)
        self._point_active(tree)
        try:
            kept_changed = self._reload_groups(serving)
            for service in SERVICES:  # a leftover of an interrupted deploy must run the new definition
                self._stop_many(self.keys(service, tree, new))
                self._refresh_group(f"{service}-{new}")
            self._ensure_data(tree)
            new_api = self.keys("api", tree, new)[: max(1, want["api"])]
            new_workers = self.keys("pdf-worker", tree, new)[: want["pdf-worker"]]
            echo(f"deploy: starting {', '.join(new_api + new_workers[:1])} beside the {old} release")
            self._start_many(new_api + new_workers[:1])
            if full_gate:
                urls = [f"http://127.0.0.1:{self._port(tree, k.split(':')[1])}" for k in new_api]
                token = self.app_env(tree)["SCHEDGEN_OPS_TOKEN"]
                report = run_gate(urls, token, timeout_s=timeout_s, with_canary=canary, echo=echo)
            else:
                self._wait_ready(tree, [k.split(":")[1] for k in new_api], timeout_s)
                report = GateReport()
        except (GateFailure, SchedgenError) as exc:
            what = str(exc) if isinstance(exc, GateFailure) else exc.one_line()
            echo(f"deploy: the {new} release failed; stopping it, the {old} release keeps serving")
            self._stop_many([k for service in SERVICES for k in self.keys(service, tree, new)])
            if old_tree is not None:
                self._point_active(old_tree)
                self._reload_groups(serving)
                for service in SERVICES:
                    self._refresh_group(f"{service}-{new}")
            raise NotSwitched(what) from exc
        # Switch: the front door sends new requests to the new slots; the old ones finish theirs, then stop.
        self.frontdoor.set_live(new)
        self._switch(tree, [self._port(tree, k.split(":")[1]) for k in new_api])
        if "frontdoor" in kept_changed:  # its program definition changed: a restart is the only way
            self._stop_many(["frontdoor"])
            self._refresh_group("frontdoor")
            self._start("frontdoor")
        echo(f"deploy: front door -> {', '.join(new_api)}; draining the {old} api slots")
        self._stop_many(self._running_keys(f"api-{old}"))
        # Workers one at a time: stop an old one (it finishes its job), start the next new one.
        old_workers = self._running_keys(f"pdf-worker-{old}")
        for i, key in enumerate(old_workers):
            self._stop_many([key])
            if i + 1 < len(new_workers):
                self._start_many([new_workers[i + 1]])
        self._start_many(new_workers)
        for group in serving - {"frontdoor"}:
            self._refresh_group(group)
        return report

    def down(self, *, volumes: bool = False) -> None:
        """Stop every program (workers finish their current job), then supervisord itself."""
        pid = self.supervisord_pid()
        if pid is not None and self.sock.exists():
            children = self._descendants(pid)
            if self.runner.dry_run:
                self.runner.note("stop all programs and shut supervisord down")
            else:
                with contextlib.suppress(OSError, xmlrpc.client.Error):
                    rpc = self.rpc()
                    rpc.stopAllProcesses(True)
                    rpc.shutdown()
                self._wait_gone([pid, *children], timeout_s=60)
        if volumes and not self.runner.dry_run:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.state / "scale.json").unlink()
        elif volumes:
            self.runner.note(f"delete {self.data_dir}")

    @staticmethod
    def _descendants(pid: int) -> list[int]:
        with contextlib.suppress(psutil.Error):
            return [p.pid for p in psutil.Process(pid).children(recursive=True)]
        return []

    @staticmethod
    def _wait_gone(pids: list[int], timeout_s: float) -> None:
        procs = []
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                procs.append(psutil.Process(pid))
        _, alive = psutil.wait_procs(procs, timeout=timeout_s)
        for proc in alive:  # should not happen: supervisord stops its children; never leave strays
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(alive, timeout=5)

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
            self._save_desired(counts)
        if self.is_running():
            self._apply_scale(tree, counts)

    def status(self) -> list[ServiceStatus]:
        if not self.is_running():
            return []
        tree = self.active
        infos = self.rpc().getAllProcessInfo()
        restarts = self._unexpected_exits()
        desired = self.desired(tree)
        by_group: dict[str, list[dict[str, Any]]] = {}
        for info in infos:
            service = re.sub(r"-(blue|green)$", "", info["group"])
            by_group.setdefault(service, []).append(info)
        result = []
        now = time.time()
        usage = _usage_all([i["pid"] for i in infos if i["statename"] in _RUNNING and i["pid"]])
        in_rotation = set(self.frontdoor.ports())
        for group in ("frontdoor", "api", "pdf-worker", "postgres", "redis", "prometheus"):
            members = by_group.get(group, [])
            if group == "prometheus" and all(m["statename"] == "STOPPED" for m in members):
                continue
            processes = []
            for info in sorted(members, key=lambda i: i["name"]):
                running = info["statename"] in _RUNNING
                if group in SERVICES and not running:
                    continue
                cpu, mem = usage.get(info["pid"], (None, None))
                processes.append(
                    ProcessStatus(
                        name=info["name"],
                        state=info["statename"].lower(),
                        pid=info["pid"] or None,
                        uptime_s=round(now - info["start"], 1) if running and info["start"] else None,
                        restarts=restarts.get(info["name"], 0),
                        cpu_percent=cpu,
                        memory_bytes=mem,
                    )
                )
            running_count = sum(1 for p in processes if p.state == "running")
            want = desired.get(group, 0 if group in self.external_programs() else 1)
            health = "ok" if running_count >= want else "degraded"
            if group == "api":
                for process in processes:
                    port = self._port(tree, process.name)
                    rotation = "in rotation" if port in in_rotation else "not in rotation"
                    process.health = f"{_probe_ready(port)}, {rotation}, :{port}"
                if any(not (p.health or "").startswith("ready") for p in processes):
                    health = "degraded"
                if not any(self._port(tree, p.name) in in_rotation for p in processes):
                    health = "degraded"
            if group == "frontdoor" and processes:
                url = self.public_url(tree)
                processes[0].health = f"{_probe_url(url + '/healthz')}, {url}, {len(in_rotation)} upstream(s)"
                if not processes[0].health.startswith("ready"):
                    health = "degraded"
            if group == "pdf-worker" and processes:
                alive = self._live_workers(tree)
                for process in processes:
                    process.health = f"{alive} live" if alive is not None else "unknown"
                if alive == 0:
                    health = "degraded"
            if group in self.external_programs():
                health = "external"
            result.append(ServiceStatus(group, want, running_count, health, processes))
        return result

    def _live_workers(self, tree: Path) -> int | None:
        """RQ workers with a fresh heartbeat, from the api's /api/queue (None when it does not answer)."""
        urls = list(self.api_urls(tree).values())
        token = self.app_env(tree).get("SCHEDGEN_OPS_TOKEN", "")
        try:
            import httpx

            response = httpx.get(
                f"{urls[0]}/api/queue", headers={"Authorization": f"Bearer {token}"}, timeout=3
            )
            workers = response.json().get("workers", []) if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, IndexError):
            return None
        if workers is None:
            return None
        return sum(1 for w in workers if w.get("heartbeat_age_s") is not None and w["heartbeat_age_s"] < 60)

    def external_programs(self) -> set[str]:
        ext = self.external_urls()
        return {
            p for p, k in (("postgres", "SCHEDGEN_DATABASE_URL"), ("redis", "SCHEDGEN_REDIS_URL")) if k in ext
        }

    def _unexpected_exits(self) -> dict[str, int]:
        """Restarts per program since supervisord started: its log's "not expected" exits."""
        counts: dict[str, int] = {}
        log = self.logs_dir / "supervisord.log"
        if not log.exists():
            return counts
        for line in log.read_text(errors="replace").splitlines():
            if "supervisord started with pid" in line:
                counts.clear()
            match = re.search(r"exited: (\S+) \(.*not expected\)", line)
            if match:
                counts[match.group(1)] = counts.get(match.group(1), 0) + 1
        return counts

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
        raw = self._conf_parser().get(f"program:{slots[0]}", "environment").replace("%%", "%")
        env = dict(self.environ)
        env.update(self.app_env())
        env.update(dict_of_key_value_pairs(raw))
        self.runner.note("exec in " + service + ": " + " ".join(command))
        return subprocess.call(command, env=env)


def psql_script_argv(bindir: Path, port: int, script: Path) -> list[str]:
    """Run a SQL script as the superuser on the local Postgres (passwords come from the environment)."""
    return [
        str(bindir / "psql"),
        "--no-psqlrc",
        "--no-password",
        "--quiet",
        "--set=ON_ERROR_STOP=1",
        f"--dbname=host=127.0.0.1 port={port} user={PG_SUPERUSER} dbname=postgres",
        f"--file={script}",
    ]


def _connect_first(conninfo: str, passwords: list[str]) -> Any:
    """An autocommit connection with the first password that works (the last error otherwise)."""
    import psycopg

    error: psycopg.OperationalError | None = None
    for password in passwords:
        try:
            return psycopg.connect(conninfo, password=password, autocommit=True)
        except psycopg.OperationalError as exc:
            error = exc
    assert error is not None
    raise error


def _probe_ready(port: int) -> str:
    """``ready`` when the api replica's /readyz answers 200, else what it said."""
    import httpx

    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"not ready (HTTP {response.status_code})"


def _probe_url(url: str) -> str:
    """``ready`` when the front door answers 200 (its certificate is judged by `schedgen health`)."""
    import httpx

    try:
        response = httpx.get(url, timeout=3, verify=False)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"HTTP {response.status_code}"


def _usage_all(pids: list[int]) -> dict[int, tuple[float | None, int | None]]:
    """CPU percent (one 0.3 s sample for all) and RSS of each process together with its children."""
    trees: dict[int, list[psutil.Process]] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            trees[pid] = [root, *root.children(recursive=True)]
    for procs in trees.values():
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)
    time.sleep(0.3)
    result: dict[int, tuple[float | None, int | None]] = {}
    for pid, procs in trees.items():
        cpu, rss = 0.0, 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
        result[pid] = (round(cpu, 1), rss)
    return result
