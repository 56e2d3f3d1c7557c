"""`schedgen health` against the real local stack (`schedgen up`: supervisord, Postgres, Redis, api,
workers) with no URL flags: endpoints come from the deployed stack. Healthy -> 0; the queue Redis
switched to allkeys-lru -> down. (Backup manifests are covered in test_health_live.py with the backup
package's own Manifest model; a real `schedgen backup` here would add ~10-25 s.)"""

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
            # one metrics port per worker replica, consecutive: the whole block must be free
            "SCHEDGEN_WORKER__METRICS_PORT": str(free_port_block(4)),
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
    from schedgen_ops.runtime.local import LocalRuntime

    conn = redis.Redis.from_url(LocalRuntime(stack.project).secrets()["SCHEDGEN_REDIS_URL"])
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
