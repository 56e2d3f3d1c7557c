"""The rendered local/ tree, as supervisord itself reads it, for every profile.

supervisord's own option parser loads the rendered supervisord.conf (with the machine facts the runtime
puts in its environment), so a template change that supervisord would reject fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from supervisor.options import ServerOptions

from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.project import init_project
from schedgen_ops.render import render_tree
from schedgen_ops.runtime.launch import env_for

MACHINE = {
    "SCHEDGEN_SUPERVISOR_SOCK": "/tmp/schedgen-test.sock",
    "SCHEDGEN_PYTHON": "/usr/bin/python3",
    "SCHEDGEN_PG_BINDIR": "/usr/lib/postgresql/15/bin",
    "SCHEDGEN_PG_USER": "nobody",
    "SCHEDGEN_REDIS_SERVER": "/usr/bin/redis-server",
    "SCHEDGEN_PROMETHEUS": "prometheus",
    "SCHEDGEN_CADDY": "/usr/bin/caddy",
    "SCHEDGEN_FRONTDOOR_ADMIN": "unix//tmp/schedgen-test-caddy.sock",
}


@pytest.mark.parametrize("profile", ["small", "medium", "large"])
def test_supervisord_accepts_the_rendered_config(
    tmp_path: Path, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "p"
    init_project(project, profile=profile)
    config = load_config(project, environ={})
    secrets = load_secrets(project)
    render_tree(config, secrets, "local", tmp_path / "out", project_dir=project)
    conf = tmp_path / "out" / "local" / "supervisord.conf"
    for key, value in MACHINE.items():
        monkeypatch.setenv(key, value)
    for sub in ("logs", "run"):  # the runtime creates these before starting supervisord
        (project / ".schedgen" / sub).mkdir(parents=True, exist_ok=True)
    options = ServerOptions()
    options.realize(args=["-c", str(conf)])
    groups = {g.name: g for g in options.process_group_configs}
    colours = ("blue", "green")
    assert set(groups) == {
        "postgres",
        "redis",
        "prometheus",
        "frontdoor",
        *(f"{s}-{c}" for s in ("api", "pdf-worker") for c in colours),
    }
    api = [p for c in colours for p in groups[f"api-{c}"].process_configs]
    workers = [p for c in colours for p in groups[f"pdf-worker-{c}"].process_configs]
    n = config.api.max_replicas
    assert [p.name for p in api] == [f"api-{c}-{i}" for c in colours for i in range(1, n + 1)]
    assert len(workers) == 2 * config.worker.max_replicas
    # every replica of both colours has its own internal port (the front door owns ports.api)
    ports = [int(p.command.split("--port ")[1].split()[0]) for p in api]
    first = config.ports.api + 10000
    assert ports == list(range(first, first + 2 * n))
    assert "--config" in groups["frontdoor"].process_configs[0].command
    # one Go scheduler thread: cheaper per proxied request at this machine's rates (docs/PERFORMANCE.md)
    assert groups["frontdoor"].process_configs[0].environment["GOMAXPROCS"] == "1"
    for replica in api:  # SIGTERM to uvicorn only: it drains in-flight requests, its sandbox children stay
        assert replica.stopasgroup is False and replica.killasgroup is True
    metrics = [p.environment["SCHEDGEN_WORKER_METRICS_PORT"] for p in workers]
    assert len(set(metrics)) == len(workers)
    assert not any(p.autostart for g in groups.values() for p in g.process_configs)
    job_timeout = config.role_settings("worker").job_timeout_s
    for worker in workers:
        assert worker.stopsignal == 15 and worker.stopasgroup is False  # one SIGTERM: warm shutdown
        assert worker.stopwaitsecs > job_timeout + 10  # above the job timeout and the slot's own wait
    one_colour = [False] * (config.worker.max_replicas - 1)
    assert ["--reconcile" in p.command for p in workers] == [True, *one_colour] * 2
    assert groups["postgres"].process_configs[0].uid == 65534  # nobody
    # no secret value anywhere in the configuration; programs read them from local/secrets/*.env
    text = conf.read_text()
    assert not any(value in text for value in secrets.values())
    app_env = env_for(str(tmp_path / "out" / "local" / "secrets" / "app.env"), {})
    assert app_env["SCHEDGEN_DATABASE_URL"].endswith(
        f"@127.0.0.1:{config.ports.postgres}/{config.postgres.database}"
    )
    assert (tmp_path / "out" / "local" / "secrets" / "app.env").stat().st_mode & 0o777 == 0o600


def test_launcher_keeps_external_urls_and_writes_redis_auth(tmp_path: Path) -> None:
    from schedgen_ops.runtime.launch import write_redis_auth

    secrets = tmp_path / "app.env"
    secrets.write_text("SCHEDGEN_DATABASE_URL=postgresql://a:b@127.0.0.1:1/x\nSCHEDGEN_OPS_TOKEN=t\n")
    env = env_for(str(secrets), {"SCHEDGEN_DATABASE_URL": "postgresql://external/db", "PATH": "/bin"})
    assert env["SCHEDGEN_DATABASE_URL"] == "postgresql://external/db" and env["SCHEDGEN_OPS_TOKEN"] == "t"
    redis_env = tmp_path / "redis.env"
    redis_env.write_text("REDIS_PASSWORD=s3cret\n")
    write_redis_auth(str(redis_env), str(tmp_path / "auth.conf"))
    assert (tmp_path / "auth.conf").read_text() == 'requirepass "s3cret"\n'
    assert (tmp_path / "auth.conf").stat().st_mode & 0o777 == 0o600
