"""Real servers for the health tests: a tiny HTTP api, a port that accepts and never answers, own Redis."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from schedgen_ops.ops.health import Endpoints, HealthThresholds
from schedgen_ops.runtime.dataservices import RedisServer, service_tempdir


@dataclass
class FakeApiState:
    """What the test HTTP server answers; tests flip it to inject faults."""

    ready: bool = True
    detail: dict[str, Any] = field(default_factory=dict)


class _Handler(BaseHTTPRequestHandler):
    state: FakeApiState

    def do_GET(self) -> None:
        if self.path == "/healthz":
            self._send(200, {"status": "ok"})
        elif self.path == "/readyz":
            checks = {
                "postgres": {"ok": True, "latency_ms": 1.0, "detail": "ok"},
                "redis": {"ok": True, "latency_ms": 1.0, "detail": "ok"},
                "storage": {"ok": True, "latency_ms": 1.0, "detail": "ok"},
            }
            checks.update(self.state.detail)
            ready = self.state.ready
            self._send(200 if ready else 503, {"status": "ready" if ready else "not_ready", "checks": checks})
        else:
            self._send(404, {"error": {"code": "not_found", "message": "no", "request_id": "x"}})

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class HttpApi:
    url: str
    state: FakeApiState


@pytest.fixture
def http_api() -> Iterator[HttpApi]:
    """A real HTTP server on 127.0.0.1 answering /healthz and /readyz like the service's api."""
    state = FakeApiState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpApi(url=f"http://127.0.0.1:{server.server_address[1]}", state=state)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections and never sends a byte (a hung dependency)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        thread.join(timeout=2)
        for conn in held:
            conn.close()
        listener.close()


@pytest.fixture
def queue_redis() -> Iterator[RedisServer]:
    """A queue Redis of this test's own (tests stop it or CONFIG SET it): AOF on, noeviction, 64 MB."""
    base = service_tempdir("schedgen-health-redis-")
    server = RedisServer.start(base / "data", appendonly="yes", maxmemory="64mb")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def thresholds() -> HealthThresholds:
    """The built-in thresholds (what a project without overrides gets from the default profile)."""
    return HealthThresholds()


@pytest.fixture
def empty_endpoints(tmp_path: Path) -> Endpoints:
    """Endpoints with nothing configured; tests fill in what they exercise."""
    return Endpoints(target="local", backup_dir=tmp_path / "backups", data_dir=tmp_path)


BackupWriter = Callable[..., Path]


@pytest.fixture
def write_backup() -> BackupWriter:
    """Write a backup set's manifest.json in the backup package's own format (`Manifest`)."""
    from schedgen_ops.ops.backup.manifest import Manifest, Verification, iso, write_manifest

    def write(
        root: Path,
        finished: datetime,
        *,
        verified: bool | None,
        state_suffix: str = "",
        status: str = "complete",
    ) -> Path:
        backup_id = finished.strftime("%Y%m%dT%H%M%SZ")
        path = root / (backup_id + state_suffix)
        path.mkdir(parents=True)
        manifest = Manifest(
            id=backup_id,
            status=status,  # type: ignore[arg-type]
            target="local",
            started_at=iso(finished - timedelta(minutes=2)),
            finished_at=iso(finished),
            error="pg_dump: connection refused" if status == "failed" else None,
        )
        if verified is not None:
            manifest.record_verification(
                Verification(
                    status="passed" if verified else "failed",
                    level="standard",
                    verified_at=iso(finished),
                    duration_s=1.0,
                )
            )
        write_manifest(path, manifest)
        return path

    return write
