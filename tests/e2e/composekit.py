"""One compose stack on the real engine shared by the compose e2e modules (built once per session).

Images: the service image is built by `schedgen build` on a debootstrap Debian base; Postgres and Redis
are stand-ins from Debian packages with the official images' interfaces (tests/dockerkit). Traefik and the
monitoring stack cannot run here, so the stack runs with edge.enabled and monitoring.enabled false: the
api is published on 127.0.0.1, one port per replica from a range of 2 x api.max_replicas ports.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from schedgen_ops.runtime.dataservices import free_port_block, service_tempdir
from tests.dockerkit import base_image, ensure_compose_plugin, require_docker, standin_image

#: api.max_replicas of the small profile: the published range holds twice as many ports.
API_MAX_REPLICAS = 2


class ComposeStack:
    def __init__(self, project: Path, api_port: int, name: str):
        self.project = project
        self.name = name
        self.first_port = api_port
        self.ports = [api_port + i for i in range(2 * API_MAX_REPLICAS)]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
        self.build_s = 0.0

    @property
    def api(self) -> str:
        """The api of the replica with the lowest published port (a roll moves replicas in the range)."""
        ports = self.live_ports()
        return f"http://127.0.0.1:{ports[0] if ports else self.first_port}"

    def live_ports(self) -> list[int]:
        """Host ports published by the running api containers, lowest first."""
        label = f"label=com.docker.compose.project={self.name}"
        out = self.docker(
            "ps", "--filter", label, "--filter", "label=com.docker.compose.service=api",
            "--format", "{{.Ports}}",
        )  # fmt: skip
        ports = []
        for line in out.splitlines():
            for binding in line.split(","):
                host, _, rest = binding.strip().partition("->")
                if rest and ":" in host:
                    ports.append(int(host.rpartition(":")[2]))
        return sorted(ports)

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(self.project), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 600) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, f"schedgen {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def docker(self, *args: str) -> str:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout

    def containers(self, service: str | None = None) -> list[str]:
        label = f"label=com.docker.compose.project={self.name}"
        argv = ["ps", "--filter", label, "--format", "{{.Names}}"]
        if service:
            argv[1:1] = ["--filter", f"label=com.docker.compose.service={service}"]
        return [line for line in self.docker(*argv).splitlines() if line]

    def container_ids(self, service: str) -> set[str]:
        label = f"label=com.docker.compose.project={self.name}"
        out = self.docker(
            "ps", "--no-trunc", "--filter", label, "--filter", f"label=com.docker.compose.service={service}",
            "--format", "{{.ID}}",
        )  # fmt: skip
        return set(out.split())

    def upload_and_wait(self, path: Path, timeout_s: float = 120) -> dict[str, Any]:
        """Upload ``path`` through the api and poll until the job ends; asserts it completed and
        returns the upload's answer (job_id, status_url, events_url ...)."""
        with httpx.Client(timeout=30) as client:
            accepted = client.post(
                f"{self.api}/api/uploads", files={"file": (path.name, path.read_bytes(), "application/pdf")}
            )
            assert accepted.status_code == 202, accepted.text
            body: dict[str, Any] = accepted.json()
            deadline = time.monotonic() + timeout_s
            status: dict[str, Any] = {}
            while time.monotonic() < deadline:
                status = client.get(f"{self.api}{body['status_url']}").json()
                if status["status"] in ("completed", "failed"):
                    break
                time.sleep(0.3)
            assert status.get("status") == "completed", status
            return body

    def psql(self, sql: str) -> str:
        return self.ok("exec", "postgres", "--", "psql", "-U", "schedgen", "-d", "schedgen", "-tAc", sql)

    def ready(self, timeout_s: float = 90) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.api}/readyz", timeout=5).status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            time.sleep(1)
        return False


def port_block_below_ephemeral(count: int) -> int:
    """Free ports below the kernel's ephemeral range: a rolling deploy binds a second port of the api
    range mid-test, and an ephemeral port may by then be some connection's source port."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return free_port_block(count)
    rng = random.Random(os.getpid())
    for _ in range(200):
        base = rng.randrange(20000, max(20001, low - count))
        if all(_free(base + i) for i in range(count)):
            return base
    return free_port_block(count)


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextmanager
def configured_stack(
    prefix: str, settings: dict[str, str], *, tempdir: str = "schedgen-e2e-compose-"
) -> Iterator[ComposeStack]:
    """A small-profile project named ``<prefix><pid>`` on the Debian stand-in images, with ``settings``
    on top; torn down (volumes, service image, files) at the end. Its images are built by the caller."""
    require_docker()
    ensure_compose_plugin()
    base_image()
    postgres, redis = standin_image("postgres"), standin_image("redis")
    root = service_tempdir(tempdir)
    project = root / "project"
    project.mkdir()
    api_port = port_block_below_ephemeral(2 * API_MAX_REPLICAS)
    name = f"{prefix}{os.getpid()}"
    s = ComposeStack(project, api_port, name)
    s.ok("init", "--profile", "small")
    for key, value in {
        "name": name,
        "edge.enabled": "false",
        "edge.api_bind": f"127.0.0.1:{api_port}",
        "monitoring.enabled": "false",
        "postgres.image": postgres,
        "redis.image": redis,
        "images.service": f"schedgen-test/service-{name}",
        **settings,
    }.items():
        s.ok("config", "set", key, value)
    try:
        yield s
    finally:
        # Shown under "Captured stdout teardown" when a test failed: what postgres said before it went.
        logs = subprocess.run(
            ["docker", "logs", "--tail", "60", f"{name}-postgres-1"],
            capture_output=True,
            text=True,
            check=False,
        )
        print(f"--- postgres log (last 60 lines) ---\n{logs.stdout}{logs.stderr}")
        s.cli("down", "--volumes", "--target", "compose", timeout=300)  # also when no release went live
        subprocess.run(["docker", "image", "rm", "-f", f"schedgen-test/service-{name}:0.1.0"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def compose_stack() -> Iterator[ComposeStack]:
    """A configured project with its service image built; torn down (volumes, image) at the end."""
    generous = {
        "service.rate_uploads": "100000/hour",
        "service.rate_status": "100000/minute",
        "service.rate_requests": "100000/minute",
    }
    with configured_stack("sgtest", generous) as s:
        started = time.monotonic()
        s.ok("build", "--base-image", base_image(), timeout=900)
        s.build_s = time.monotonic() - started
        yield s
