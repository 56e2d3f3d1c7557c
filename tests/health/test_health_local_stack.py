"""`schedgen health` against the real local stack (`schedgen up`: supervisord, Postgres, Redis, api,
workers) with no URL flags: endpoints come from the deployed stack. Healthy -> 0; the queue Redis
switched to allkeys-lru -> down. (Backup manifests are covered in test_health_live.py with the backup
package's own Manifest model.) The same stack then proves issue 13's items on the real thing: `backup verify
--deep` (its scratch restore) works, and the service's own credentials are least privilege."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import redis

from schedgen_ops.runtime.dataservices import free_port, free_port_block, service_tempdir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


class Stack:
    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.project = project
        self.env = env

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(self.project), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )

    def health(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = self.cli("health", "--json", *args, timeout=60)
        return result.returncode, json.loads(result.stdout)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = service_tempdir("schedgen-health-stack-")
    project = root / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    env.update(  # the machine is shared: free ports through config environment overrides
        {
            "SCHEDGEN_PORTS__API": str(free_port_block(2)),
            "SCHEDGEN_PORTS__POSTGRES": str(free_port()),
            "SCHEDGEN_PORTS__REDIS": str(free_port()),
            "SCHEDGEN_PORTS__PROMETHEUS": str(free_port()),
            # one metrics port per worker slot (blue and green), consecutive: the whole block must be free
            "SCHEDGEN_WORKER__METRICS_PORT": str(free_port_block(6)),
            "SCHEDGEN_FRONTDOOR__UPSTREAM_PORT": str(free_port_block(4)),  # api slots, blue and green
            "SCHEDGEN_SERVICE__WORKER_PROCESSES": "1",
        }
    )
    s = Stack(project, env)
    up = s.cli("up", "--json")
    supervisord = project / ".schedgen" / "run" / "supervisord.pid"
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield s
    finally:
        pids: list[int] = []
        with contextlib.suppress(OSError, ValueError, psutil.Error):
            root_proc = psutil.Process(int(supervisord.read_text()))
            pids = [root_proc.pid, *(p.pid for p in root_proc.children(recursive=True))]
        s.cli("down", timeout=120)
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        shutil.rmtree(root, ignore_errors=True)


def test_healthy_local_stack_without_flags(stack: Stack) -> None:
    code, doc = stack.health()
    not_ok = [(c["id"], c["status"], c["measured"]) for c in doc["checks"] if c["status"] != "ok"]
    # Nothing configured by hand: only the backup is unknown (none taken yet), which does not count.
    assert not_ok == [("backup.age", "unknown", f"no complete backup in {stack.project / 'backups'}")]
    assert code == 0 and doc["verdict"] == "healthy"
    ids = {c["id"] for c in doc["checks"]}
    assert {"api.readiness", "postgres.connections", "redis.eviction_policy", "queue.workers"} <= ids
    assert {"storage.reachable", "disk.data", "queue.failed_ratio"} <= ids


def test_eviction_policy_on_the_stacks_redis_is_critical(stack: Stack) -> None:
    # Only the operator's admin user may CONFIG SET (the service's and the backup user may not).
    conn = redis.Redis.from_url(_admin_redis_url(stack))
    conn.config_set("maxmemory-policy", "allkeys-lru")
    try:
        code, doc = stack.health("--only", "redis")
        check = next(c for c in doc["checks"] if c["id"] == "redis.eviction_policy")
        assert code == 2 and check["status"] == "critical" and check["value"] == "allkeys-lru"
    finally:
        conn.config_set("maxmemory-policy", "noeviction")
        conn.close()
    code, _ = stack.health("--only", "redis")
    assert code == 0


def _secret(stack: Stack, name: str) -> str:
    from schedgen_ops.config.secrets import load_secrets

    return load_secrets(stack.project)[name]


def _admin_redis_url(stack: Stack) -> str:
    password, port = _secret(stack, "REDIS_ADMIN_PASSWORD"), stack.env["SCHEDGEN_PORTS__REDIS"]
    return f"redis://admin:{password}@127.0.0.1:{port}/0"


def test_backup_verify_deep_works_on_the_stack_schedgen_up_started(stack: Stack) -> None:
    """Issue 13 item 11: the scratch restore of `verify --deep` runs as the database owner (CREATEDB), not
    as the service's role, which may not create databases."""
    created = stack.cli("backup", "--json", timeout=300)
    assert created.returncode == 0, created.stdout + created.stderr
    backup_id = json.loads(created.stdout)["id"]
    verified = stack.cli("backup", "verify", backup_id, "--deep", "--json", timeout=300)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    result = json.loads(verified.stdout)["verification"]
    deep = next(c for c in result["checks"] if c["name"].startswith("deep"))
    assert (result["level"], result["status"]) == ("deep", "passed") and deep["ok"], deep
    assert "counts equal; dropped" in deep["detail"], deep


def test_the_stacks_service_credentials_are_least_privilege(stack: Stack) -> None:
    """The service's own role and Redis user on the running stack, and a superuser password of its own."""
    import psycopg

    from schedgen_ops.runtime.local import LocalRuntime

    app = LocalRuntime(stack.project).app_env()
    with psycopg.connect(app["SCHEDGEN_DATABASE_URL"], autocommit=True) as conn:
        for sql in ("CREATE ROLE intruder", "COPY (SELECT 1) TO PROGRAM 'id'", "CREATE DATABASE intruder"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    queue = redis.Redis.from_url(app["SCHEDGEN_REDIS_URL"])
    try:
        for command in (("FLUSHALL",), ("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                queue.execute_command(*command)
    finally:
        queue.close()
    superuser = f"host=127.0.0.1 port={stack.env['SCHEDGEN_PORTS__POSTGRES']} user=postgres dbname=postgres"
    app_password = psycopg.conninfo.conninfo_to_dict(app["SCHEDGEN_DATABASE_URL"])["password"]
    assert app_password != _secret(stack, "POSTGRES_SUPERUSER_PASSWORD")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(superuser, password=str(app_password)).close()
    psycopg.connect(superuser, password=_secret(stack, "POSTGRES_SUPERUSER_PASSWORD")).close()
    # The checklist agrees, on the rendered tree and against the running servers.
    ids = ("live-least-privilege", "postgres-app-role", "redis-acl-users")
    result = stack.cli("checklist", "--live", "--target", "local", "--json", *(f"--only={i}" for i in ids))
    report = json.loads(result.stdout)
    statuses = {r["id"]: r["status"] for r in report["results"]}
    assert statuses == dict.fromkeys(ids, "pass"), [r for r in report["results"] if r["status"] != "pass"]
