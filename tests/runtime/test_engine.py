"""The Docker Engine adapter against recorded Engine API responses, served over real HTTP.

The stand-in engine (tests/runtime/conftest.py) answers with Engine API JSON documents recorded in
tests/runtime/engine_responses/ and keeps the requests the SDK sent, so the tests check both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import docker
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.engine import DockerEngine, cpu_percent, memory_bytes, parse_docker_time

API_ID = "8dfafdbc3a40a1e0c3f4c2d1b5a6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8"
Requests = list[tuple[str, str, dict[str, list[str]], bytes]]


@pytest.fixture
def engine(engine_server: tuple[str, Requests]) -> Iterator[DockerEngine]:
    client = docker.APIClient(base_url=engine_server[0], version="1.43")
    try:
        yield DockerEngine(client)
    finally:
        client.close()


@pytest.fixture
def requests(engine_server: tuple[str, Requests]) -> Requests:
    return engine_server[1]


def test_containers_of_a_project_with_health_restarts_and_uptime(
    engine: DockerEngine, requests: Requests
) -> None:
    containers = engine.containers("schedgen")
    method, path, query, _ = requests[0]
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


def test_stats_cpu_and_working_set_memory(engine: DockerEngine, requests: Requests) -> None:
    stats = engine.stats(API_ID)
    # (2.5e9 - 2.0e9) / (120e9 - 118e9) * 2 CPUs * 100
    assert stats.cpu_percent == 50.0
    assert stats.memory_bytes == 209_715_200 - 10_485_760
    assert stats.memory_limit_bytes == 1_073_741_824
    _, path, query, _ = requests[-1]
    assert path == f"/v1.43/containers/{API_ID}/stats" and query["stream"][0].lower() in {"0", "false"}


def test_exec_returns_exit_code_and_output(engine: DockerEngine, requests: Requests) -> None:
    code, output = engine.exec(API_ID, ["sh", "-c", "exit 3"])
    assert code == 3
    assert "migrating" in output and "boom" in output
    create = next(r for r in requests if r[1].endswith("/exec"))
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
