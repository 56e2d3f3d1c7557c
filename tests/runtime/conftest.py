"""Fixtures of the runtime tests: a stand-in Docker Engine that answers with recorded Engine API responses.

No engine runs on our machines, so a tiny HTTP server answers the SDK's requests with Engine API JSON
documents (tests/runtime/engine_responses/, in the shapes of Engine API v1.43) and records what was asked.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import pytest

RESPONSES = Path(__file__).parent / "engine_responses"
API_ID = "8dfafdbc3a40a1e0c3f4c2d1b5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
EXEC_ID = "b53ee82b53a40c7dca428523e34f741f3abc51d9f297a14ff874bf761b995126"
Request = tuple[str, str, dict[str, list[str]], bytes]


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
        if method == "GET" and path == "version":  # the SDK negotiates the API version first
            return self._reply(200, b'{"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24"}')
        if method == "GET" and path == "containers/json":
            return self._reply(200, _load("containers_json.json"))
        if method == "GET" and path.startswith("containers/") and path.endswith("/json"):
            cid = path.split("/")[1]
            candidates = list(RESPONSES.glob(f"inspect_{cid[:12]}.json"))
            if candidates:
                return self._reply(200, candidates[0].read_bytes())
            return self._reply(404, b'{"message": "No such container: ' + cid.encode() + b'"}')
        if method == "GET" and path.startswith("containers/") and path.endswith("/stats"):
            recorded = RESPONSES / f"stats_{path.split('/')[1][:12]}.json"
            if recorded.exists():
                return self._reply(200, recorded.read_bytes())
            return self._reply(404, b'{"message": "No such container"}')
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
def engine_server() -> Iterator[tuple[str, list[Request]]]:
    """(tcp:// URL of the stand-in engine, the requests it received)."""
    _EngineHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EngineHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{server.server_address[1]}", _EngineHandler.requests
    finally:
        server.shutdown()
        server.server_close()
