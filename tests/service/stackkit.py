"""Helpers to run `schedgen serve api` / `schedgen serve worker` as real processes in tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

OPS_TOKEN = "test-ops-token"


@dataclass
class Proc:
    argv: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        handle = open(self.log, "ab")  # noqa: SIM115 - closed when the process ends
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        handle.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def stop(self, timeout: float = 20.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Stack:
    """A running api (+ optional workers); `client` talks to the api."""

    env: dict[str, str]
    workdir: Path
    port: int
    procs: list[Proc] = field(default_factory=list)
    api: Proc | None = None
    client: httpx.Client = field(init=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def schedgen(self, *args: str, env: dict[str, str] | None = None, name: str = "proc") -> Proc:
        log = self.workdir / f"{name}-{len(self.procs)}.log"
        proc = Proc([sys.executable, "-m", "schedgen_ops.cli.main", *args], {**self.env, **(env or {})}, log)
        self.procs.append(proc.start())
        return proc

    def start_api(self, workers: int = 1) -> Proc:
        self.api = self.schedgen(
            "serve", "api", "--port", str(self.port), "--workers", str(workers), name="api"
        )
        self.client = httpx.Client(base_url=self.base_url, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.client.get("/healthz").status_code == 200:
                    return self.api
            except httpx.HTTPError:
                pass
            if self.api.popen is not None and self.api.popen.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError("api did not start:\n" + self.api.output()[-3000:])

    def start_worker(self, processes: int = 1, *extra: str, env: dict[str, str] | None = None) -> Proc:
        return self.schedgen("serve", "worker", "--processes", str(processes), *extra, env=env, name="worker")

    def upload(self, pdf: bytes, filename: str = "t.pdf", **kwargs: Any) -> httpx.Response:
        return self.client.post("/api/uploads", files={"file": (filename, pdf, "application/pdf")}, **kwargs)

    def wait_done(self, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        body: dict[str, Any] = {}
        while time.monotonic() < deadline:
            body = self.client.get(f"/api/jobs/{job_id}").json()
            if body.get("status") in ("completed", "failed"):
                return body
            time.sleep(0.1)
        raise AssertionError(f"job {job_id} not done in {timeout}s: {body}\n" + self.logs())

    def logs(self) -> str:
        return "\n".join(f"--- {p.log.name}\n{p.output()[-3000:]}" for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def service_env(database_url: str, redis_url: str, workdir: Path, **extra: str) -> dict[str, str]:
    """Environment for service processes (isolated storage and metrics dir; fast retries)."""
    uploads = workdir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    metrics_dir = workdir / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDGEN_", "PROMETHEUS_"))}
    env.update(
        {
            "SCHEDGEN_DATABASE_URL": database_url,
            "SCHEDGEN_REDIS_URL": redis_url,
            "SCHEDGEN_STORAGE_URL": f"file://{uploads}",
            "SCHEDGEN_OPS_TOKEN": OPS_TOKEN,
            "SCHEDGEN_METRICS_DIR": str(metrics_dir),
            "SCHEDGEN_WORKER_METRICS_PORT": "0",
            "SCHEDGEN_JOB_RETRY_BACKOFF_S": "0",
            "SCHEDGEN_RECONCILE_INTERVAL_S": "1",
            "SCHEDGEN_DB_POOL_MIN": "1",
            "SCHEDGEN_LOG_LEVEL": "INFO",
            "SCHEDGEN_TESTING": "1",
            # Tests poll status often; the rate-limit tests set their own limits.
            "SCHEDGEN_RATE_STATUS": "100000/minute",
            "SCHEDGEN_RATE_REQUESTS": "100000/minute",
        }
    )
    env.update(extra)
    return env
