"""The Docker Engine adapter against recorded Engine API responses, served over real HTTP.

No engine runs on our machines, so a tiny HTTP server answers the SDK's requests with Engine API JSON
documents (tests/runtime/engine_responses/, in the shapes of Engine API v1.43) and records what the SDK asked.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import docker
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.engine import DockerEngine, cpu_percent, memory_bytes, parse_docker_time

RESPONSES = Path(__file__).parent / "engine_responses"
API_ID = "8dfafdbc3a40a1e0c3f4c2d1b5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
EXEC_ID = "b53ee82b53a40c7dca428523e34f741f3abc51d9f297a14ff874bf761b995126"


def _load(name: str) -> bytes:
    return (RESPONSES / name).read_bytes()


class _EngineHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    requests: ClassVar[list[tuple[str, str, dict[str, list[str]], bytes]]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        _EngineHandler.requests.append((method, url.path, parse_qs(url.query), body))
        path = url.path.split("/", 2)[2] if url.path.startswith("/v1.") else url.path.lstrip("/")
        if method == "GET" and path == "containers/json":
            return self._reply(200, _load("containers_json.json"))
        if method == "GET" and path.startswith("containers/") and path.endswith("/json"):
            cid = path.split("/")[1]
            candidates = list(RESPONSES.glob(f"inspect_{cid[:12]}.json"))
            if candidates:
                return self._reply(200, candidates[0].read_bytes())
            return self._reply(404, b'{"message": "No such container: ' + cid.encode() + b'"}')
        if method == "GET" and path == f"containers/{API_ID}/stats":
            return self._reply(200, _load("stats_8dfafdbc3a40.json"))
        if method == "POST" and path == f"containers/{API_ID}/exec":
            return self._reply(201, _load("exec_create.json"))
        if method == "POST" and path == f"exec/{EXEC_ID}/start":
            frames = b"".join(
                struct.pack(">BxxxL", stream, len(data)) + data
                for stream, data in ((1, b"migrating\n"), (2, b"boom\n"))
            )
            # Like the engine: a raw stream without Content-Length, closed when the command ends.
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", "application/vnd.docker.raw-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            time.sleep(0.2)  # the SDK takes over the raw socket once the headers are parsed
            self.wfile.write(frames)
            return None
        if method == "GET" and path == f"exec/{EXEC_ID}/json":
            return self._reply(200, _load("exec_inspect.json"))
        return self._reply(404, b'{"message": "page not found"}')

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")


@pytest.fixture
def engine() -> Iterator[DockerEngine]:
    _EngineHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EngineHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = docker.APIClient(base_url=f"tcp://127.0.0.1:{server.server_address[1]}", version="1.43")
    try:
        yield DockerEngine(client)
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_containers_of_a_project_with_health_restarts_and_uptime(engine: DockerEngine) -> None:
    containers = engine.containers("schedgen")
    method, path, query, _ = _EngineHandler.requests[0]
    assert (method, path) == ("GET", "/v1.43/containers/json")
    assert query["all"] == ["1"]
    assert json.loads(query["filters"][0]) == {"label": ["com.docker.compose.project=schedgen"]}
    assert [(c.service, c.number, c.state, c.health, c.restarts) for c in containers] == [
        ("api", 1, "running", "healthy", 0),
        ("pdf-worker", 1, "running", "unhealthy", 1),
        ("pdf-worker", 2, "exited", None, 4),
    ]
    api = containers[0]
    assert api.name == "schedgen-api-1"
    assert api.started_at == datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
    assert api.uptime_s(datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC)) == 7200.0
    assert containers[2].uptime_s() is None  # exited: no uptime


def test_stats_cpu_and_working_set_memory(engine: DockerEngine) -> None:
    stats = engine.stats(API_ID)
    # (2.5e9 - 2.0e9) / (120e9 - 118e9) * 2 CPUs * 100
    assert stats.cpu_percent == 50.0
    assert stats.memory_bytes == 209_715_200 - 10_485_760
    assert stats.memory_limit_bytes == 1_073_741_824
    _, path, query, _ = _EngineHandler.requests[-1]
    assert path == f"/v1.43/containers/{API_ID}/stats" and query["stream"][0].lower() in {"0", "false"}


def test_exec_returns_exit_code_and_output(engine: DockerEngine) -> None:
    code, output = engine.exec(API_ID, ["sh", "-c", "exit 3"])
    assert code == 3
    assert "migrating" in output and "boom" in output
    create = next(r for r in _EngineHandler.requests if r[1].endswith("/exec"))
    assert json.loads(create[3])["Cmd"] == ["sh", "-c", "exit 3"]


def test_engine_errors_become_one_line_errors(engine: DockerEngine) -> None:
    with pytest.raises(SchedgenError, match="Docker engine request failed"):
        engine.stats("0000000000000000")


def test_stat_helpers_on_edge_cases() -> None:
    assert cpu_percent({}) is None
    same = {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 10, "online_cpus": 2}
    assert cpu_percent({"cpu_stats": same, "precpu_stats": same}) == 0.0
    assert memory_bytes({"memory_stats": {}}) is None
    assert memory_bytes({"memory_stats": {"usage": 100, "stats": {"cache": 30}}}) == 70  # cgroup v1
    assert parse_docker_time("0001-01-01T00:00:00Z") is None
    assert parse_docker_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
