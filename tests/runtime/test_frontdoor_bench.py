"""The front-door benchmark's client is fair to both paths: one pool, keep-alive on each, even interleaving.

The benchmark's ratio is only meaningful if the two paths differ by the hop alone, so its client is checked
against two real loopback HTTP/1.1 servers (the stand-ins for the front door and the replica).
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "frontdoor_bench.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("frontdoor_bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Ok(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn and Caddy speak it

    def do_GET(self) -> None:
        body = b'{"status":"done"}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture
def servers() -> Iterator[list[str]]:
    started = [ThreadingHTTPServer(("127.0.0.1", 0), _Ok) for _ in range(2)]
    for server in started:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}/api/jobs/x" for s in started]
    for server in started:
        server.shutdown()
        server.server_close()


def test_interleaved_series_reuses_connections_on_both_paths(servers: list[str]) -> None:
    bench = _bench()
    urls = {"frontdoor": servers[0], "direct": servers[1]}

    async def run() -> tuple[dict[str, Any], dict[str, Any]]:
        total = {name: bench._Path() for name in urls}
        async with httpx.AsyncClient() as client:
            return await bench._paced(urls, 100, 1.0, client, total), total

    block, total = asyncio.run(run())
    for name in urls:
        got = total[name]
        assert got.errors == 0
        assert len(got.latencies) == 50  # 100 req/s in all, taken in turn: half each
        assert len(got.lag) == 50 and min(got.lag) >= 0
        # keep-alive: connections are reused (a new one only when requests overlap), not one per request
        assert 1 <= got.connects <= 10
        assert block[name].latencies == got.latencies
    summary = bench._summary(total["direct"])
    assert summary["requests"] == 50 and summary["new_connections"] == total["direct"].connects
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
