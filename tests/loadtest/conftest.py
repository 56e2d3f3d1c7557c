"""A real parsing service for the load-test tests: `schedgen serve api` + `schedgen serve worker` processes
on the session's Postgres and Redis, shared by the whole module (starting it per test would cost more
than the tiny runs themselves)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port, service_tempdir

REDIS_DB = 0  # the shared fixtures rotate 1..15 per test; this module owns 0 and flushes it
OPS_TOKEN = "loadtest-ops-token"  # the api's SCHEDGEN_OPS_TOKEN: runs given it mint keys over HTTP


@dataclass
class LiveService:
    url: str
    database_url: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    workdir: Path
    ops_token: str = OPS_TOKEN

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}"
            for path in self.workdir.glob("*.log")
        )


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as handle:
        return subprocess.Popen(
            argv, env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="module")
def live_service(postgres_server: PostgresServer, redis_server: RedisServer) -> Iterator[LiveService]:
    """api (1 uvicorn process) and 2 worker processes, default rate limits, fresh database, an ops token."""
    name = f"lt_{uuid.uuid4().hex[:12]}"
    database_url = postgres_server.create_database(name)
    redis_url = redis_server.url_for(REDIS_DB)
    redis.Redis.from_url(redis_url).flushdb()
    workdir = service_tempdir("schedgen-loadtest-")
    (workdir / "uploads").mkdir()
    (workdir / "metrics").mkdir()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDGEN_", "PROMETHEUS_"))}
    env.update(
        {
            "SCHEDGEN_DATABASE_URL": database_url,
            "SCHEDGEN_REDIS_URL": redis_url,
            "SCHEDGEN_STORAGE_URL": f"file://{workdir / 'uploads'}",
            "SCHEDGEN_METRICS_DIR": str(workdir / "metrics"),
            "SCHEDGEN_WORKER_METRICS_PORT": str(free_port()),  # RSS is sampled from api and worker /metrics
            "SCHEDGEN_LOG_LEVEL": "WARNING",
            "SCHEDGEN_OPS_TOKEN": OPS_TOKEN,
        }
    )
    cli = [sys.executable, "-m", "schedgen_ops.cli.main", "serve"]
    procs = [_start([*cli, "api", "--port", str(port), "--workers", "1"], env, workdir / "api.log")]
    service = LiveService(f"http://127.0.0.1:{port}", database_url, env, procs, workdir)
    try:
        deadline = time.monotonic() + 40
        while True:
            try:
                if httpx.get(f"{service.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if procs[0].poll() is not None or time.monotonic() > deadline:
                pytest.fail("api did not start:\n" + service.logs())
            time.sleep(0.2)
        procs.append(_start([*cli, "worker", "--processes", "2"], env, workdir / "worker.log"))
        yield service
    finally:
        for proc in reversed(procs):
            _stop(proc)
        postgres_server.drop_database(name)
        redis.Redis.from_url(redis_url).flushdb()
        shutil.rmtree(workdir, ignore_errors=True)
