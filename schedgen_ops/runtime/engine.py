"""A small adapter over the Docker Engine API (the ``docker`` SDK) for what the compose CLI cannot give.

Compose changes the stack; the Engine API answers questions about it: each container's state, health,
restart count, start time, CPU and memory, and runs exec with an exit code. Everything is read from the
low-level `docker.APIClient` so the adapter can be tested against recorded Engine API responses.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import docker
from docker.errors import DockerException, NotFound

from schedgen_ops.errors import SchedgenError

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
COMPOSE_SERVICE_LABEL = "com.docker.compose.service"
COMPOSE_NUMBER_LABEL = "com.docker.compose.container-number"
#: Negotiated with the engine: Debian's docker.io 20.10 speaks 1.41, newer engines more.
API_VERSION = "auto"
ONE_SHOT_LABEL = "io.schedgen.one-shot"


@dataclass
class ContainerState:
    """The facts `status` shows for one container."""

    id: str
    name: str
    service: str
    number: int
    state: str
    health: str | None
    started_at: datetime | None
    restarts: int
    one_shot: bool = False
    #: What a rolling deploy compares with the tree: the image id and the container's labels.
    image_id: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    #: Host (address, port) pairs the container publishes.
    published: tuple[tuple[str, int], ...] = ()

    def uptime_s(self, now: datetime | None = None) -> float | None:
        if self.state != "running" or self.started_at is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.started_at).total_seconds())


@dataclass
class ContainerStats:
    cpu_percent: float | None
    memory_bytes: int | None
    memory_limit_bytes: int | None


def parse_docker_time(value: str | None) -> datetime | None:
    """Engine timestamps have nanoseconds (``2024-05-01T10:00:00.123456789Z``); zero means never."""
    if not value or value.startswith("0001-01-01"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    micro = (frac + "000000")[:6] if frac else "000000"
    return datetime.fromisoformat(f"{head}.{micro}+00:00")


def cpu_percent(stats: dict[str, Any]) -> float | None:
    """CPU use over the sampling interval, as ``docker stats`` computes it (100% = one CPU)."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    try:
        cpu_delta = cpu["cpu_usage"]["total_usage"] - pre["cpu_usage"]["total_usage"]
        system_delta = cpu["system_cpu_usage"] - pre["system_cpu_usage"]
    except (KeyError, TypeError):
        return None
    online = cpu.get("online_cpus") or len(cpu.get("cpu_usage", {}).get("percpu_usage") or []) or 1
    if system_delta <= 0 or cpu_delta < 0:
        return 0.0
    return round(cpu_delta / system_delta * online * 100.0, 2)


def memory_bytes(stats: dict[str, Any]) -> int | None:
    """Working-set memory: usage minus page cache (cgroup v2 ``inactive_file``, v1 ``cache``)."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    detail = memory.get("stats") or {}
    cache = detail.get("inactive_file", detail.get("total_inactive_file", detail.get("cache", 0)))
    return max(0, int(usage) - int(cache))


def _raise(exc: Exception) -> Any:
    raise exc


def _published(detail: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """Host bindings of a running container (``NetworkSettings.Ports``), sorted."""
    ports = (detail.get("NetworkSettings") or {}).get("Ports") or {}
    found = {
        (str(b.get("HostIp") or ""), int(b["HostPort"]))
        for bindings in ports.values()
        for b in bindings or []
        if str(b.get("HostPort") or "").isdigit()
    }
    return tuple(sorted(found))


class DockerEngine:
    """Read container facts and run exec through the Engine API."""

    def __init__(self, client: docker.APIClient | None = None, *, base_url: str | None = None):
        if client is None:
            try:
                url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
                client = docker.APIClient(base_url=url, version=API_VERSION)
            except DockerException as exc:
                raise SchedgenError(
                    f"cannot reach the Docker engine: {exc}", code="engine_unreachable"
                ) from exc
        self.client = client

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DockerException as exc:
            raise SchedgenError(
                f"Docker engine request failed ({what}): {exc}",
                code="engine_error",
                hint="is the Docker engine running and DOCKER_HOST right?",
            ) from exc

    def containers(self, project: str) -> list[ContainerState]:
        """Every container (stopped ones too) of a compose project, by service then replica number."""
        listed = self._call(
            "list containers",
            self.client.containers,
            all=True,
            filters={"label": [f"{COMPOSE_PROJECT_LABEL}={project}"]},
        )
        states = []
        for summary in listed:
            try:
                detail = self.client.inspect_container(summary["Id"])
            except NotFound:
                continue  # removed between the list and the inspect (a rolling deploy retires containers)
            except DockerException as exc:
                detail = self._call("inspect", _raise, exc)
            labels = detail.get("Config", {}).get("Labels") or summary.get("Labels") or {}
            state = detail.get("State") or {}
            health = (state.get("Health") or {}).get("Status")
            states.append(
                ContainerState(
                    id=detail["Id"],
                    name=detail.get("Name", "").lstrip("/"),
                    service=labels.get(COMPOSE_SERVICE_LABEL, "?"),
                    number=int(labels.get(COMPOSE_NUMBER_LABEL, "0") or 0),
                    state=state.get("Status", "unknown"),
                    health=health,
                    started_at=parse_docker_time(state.get("StartedAt")),
                    restarts=int(detail.get("RestartCount", 0) or 0),
                    one_shot=labels.get(ONE_SHOT_LABEL) == "true",
                    image_id=str(detail.get("Image") or ""),
                    labels=dict(labels),
                    published=_published(detail),
                )
            )
        return sorted(states, key=lambda c: (c.service, c.number))

    def stats(self, container_id: str) -> ContainerStats:
        """One stats sample (the engine fills precpu_stats from its previous read)."""
        data = self._call("stats", self.client.stats, container_id, stream=False)
        memory = data.get("memory_stats") or {}
        return ContainerStats(cpu_percent(data), memory_bytes(data), memory.get("limit"))

    def exec(self, container_id: str, command: Sequence[str]) -> tuple[int, str]:
        """Run ``command`` in the container; return its exit code and combined output."""
        created = self._call("exec create", self.client.exec_create, container_id, list(command))
        output = self._call("exec start", self.client.exec_start, created["Id"])
        inspected = self._call("exec inspect", self.client.exec_inspect, created["Id"])
        text = output.decode(errors="replace") if isinstance(output, bytes) else str(output)
        return int(inspected.get("ExitCode") or 0), text
