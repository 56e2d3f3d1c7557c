"""The local front door for real: Caddy 2.6 running the rendered Caddyfile in front of loopback stub replicas.

TLS with Caddy's local CA (HTTPS verified against that CA, HTTP redirected, HSTS and the Traefik security
headers), /metrics kept off the public address, a spoofed X-Forwarded-For replaced by the real client
address (what the api's trusted-proxy rule relies on), a graceful reload that moves traffic to another
replica without failing a request, and the ACME and systemd renders validated by their own tools.
ACME itself cannot run here (no network): `caddy validate` of the rendered config is what is proven.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.project import init_project
from schedgen_ops.errors import SchedgenError
from schedgen_ops.render import render_tree
from schedgen_ops.runtime.dataservices import free_port
from schedgen_ops.runtime.frontdoor import FrontDoor, reload_argv, upstreams_text, validate_argv
from schedgen_ops.runtime.runner import Runner

CADDY = shutil.which("caddy")
needs_caddy = pytest.mark.skipif(CADDY is None, reason="caddy is not installed (apt-get install -y caddy)")


class Replica:
    """A stub api replica: /readyz 200, and every other path echoes who it is and the X-Forwarded-For."""

    def __init__(self, name: str):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                body = json.dumps(
                    {"replica": outer.name, "xff": self.headers.get("X-Forwarded-For")}
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Server", "uvicorn")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.name = name
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _render(tmp_path: Path, *overrides: str) -> tuple[Path, Path]:
    project = tmp_path / "p"
    init_project(project, profile="small")
    # ports.api is a free (ephemeral, high) port here: fixed internal ports keep the render independent of it.
    config = load_config(project, environ={}, overrides=["frontdoor.upstream_port=20000", *overrides])
    render_tree(config, load_secrets(project), "local", tmp_path / "out", project_dir=project)
    return project, tmp_path / "out" / "local" / "Caddyfile"


class Door:
    def __init__(self, project: Path, caddyfile: Path):
        self.project, self.caddyfile = project, caddyfile
        self.fd = FrontDoor(project / ".schedgen" / "run", project, Runner())
        data = project / ".schedgen" / "data" / "frontdoor"
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": str(project),
            "SCHEDGEN_FRONTDOOR_ADMIN": self.fd.admin,
            "XDG_CONFIG_HOME": str(data / "config"),
            "XDG_DATA_HOME": str(data),
        }
        self.log = (project / "caddy.log").open("w")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        assert CADDY
        argv = [CADDY, "run", "--config", str(self.caddyfile), "--adapter", "caddyfile"]
        self.proc = subprocess.Popen(argv, env=self.env, stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with httpx.Client(verify=False) as c:
                    c.get(f"http://127.0.0.1:{port}/", timeout=1)
                return
            except httpx.HTTPError:
                assert self.proc.poll() is None, (self.project / "caddy.log").read_text()
                time.sleep(0.1)
        raise AssertionError("caddy did not listen: " + (self.project / "caddy.log").read_text())

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        self.log.close()

    def wait_certificate(self, port: int, timeout_s: float = 30) -> None:
        """Caddy listens before its local CA has issued the site's certificate (a handshake then gets
        an internal-error alert): wait until a verified handshake works."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                context = ssl.create_default_context(cafile=self.root_ca)
                with httpx.Client(verify=context) as c:
                    c.get(f"https://127.0.0.1:{port}/healthz", timeout=2)
                return
            except (httpx.HTTPError, OSError, ssl.SSLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    @property
    def root_ca(self) -> Path:
        return self.project / ".schedgen/data/frontdoor/pki/authorities/local/root.crt"


@pytest.fixture
def replicas() -> Iterator[list[Replica]]:
    made = [Replica("a"), Replica("b")]
    yield made
    for replica in made:
        replica.close()


@needs_caddy
def test_tls_internal_https_redirect_hsts_headers_and_no_spoofed_client(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    https, http = free_port(), free_port()
    project, caddyfile = _render(
        tmp_path, f"ports.api={https}", "frontdoor.tls=internal", f"frontdoor.http_port={http}"
    )
    door = Door(project, caddyfile)
    door.fd.write_upstreams([replicas[0].port])
    door.start(http)
    try:
        door.wait_certificate(https)
        with httpx.Client(
            verify=ssl.create_default_context(cafile=door.root_ca)
        ) as client:  # verified against the local CA only
            response = client.get(f"https://127.0.0.1:{https}/api/x", headers={"X-Forwarded-For": "6.6.6.6"})
            assert response.status_code == 200
            # Caddy ignores a client's X-Forwarded-For (no trusted_proxies) and sends the real peer.
            assert response.json() == {"replica": "a", "xff": "127.0.0.1"}
            headers = response.headers
            assert headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
            assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
            assert headers["referrer-policy"] == "strict-origin-when-cross-origin"
            assert "content-security-policy" in headers and "server" not in headers
            assert client.get(f"https://127.0.0.1:{https}/metrics").status_code == 404
            assert client.get(f"https://localhost:{https}/healthz").status_code == 200
        # `health` judges the certificate against the local CA; Caddy's 12-hour leaves are judged in hours.
        from schedgen_ops.config.health import HealthThresholds
        from schedgen_ops.ops.health.checks.tls import expiry
        from schedgen_ops.ops.health.endpoints import Endpoints
        from schedgen_ops.ops.health.model import Level
        from schedgen_ops.ops.health.runner import Deadline, ProbeContext

        ctx = ProbeContext(Endpoints(), HealthThresholds.model_validate({}), Deadline(10))
        hours = Level(3 / 24, 1 / 24, rising=False)
        [good] = expiry(ctx, "127.0.0.1", https, cafile=str(door.root_ca), check="frontdoor_tls", level=hours)
        assert good.status.value == "ok" and 0.3 < float(good.value or 0) < 0.6, good  # a fresh 12 h leaf
        [bad] = expiry(ctx, "127.0.0.1", https, check="frontdoor_tls")  # system trust store: not trusted
        assert bad.status.value == "critical" and "unable to get local issuer" in bad.measured, bad
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://127.0.0.1:{https}/healthz")  # not publicly trusted: the CA is ours
        redirect = httpx.get(f"http://127.0.0.1:{http}/api/jobs/1?x=y")
        assert redirect.status_code == 308 or redirect.status_code == 301
        assert redirect.headers["location"] == f"https://127.0.0.1:{https}/api/jobs/1?x=y"
    finally:
        door.stop()


@needs_caddy
def test_graceful_reload_moves_traffic_without_a_failed_request(
    tmp_path: Path, replicas: list[Replica]
) -> None:
    port = free_port()
    project, caddyfile = _render(tmp_path, f"ports.api={port}")
    door = Door(project, caddyfile)
    door.fd.write_upstreams([replicas[0].port])
    door.start(port)
    seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            for _ in range(5000):  # bounded
                if stop.is_set():
                    return
                try:
                    seen.append(client.get(f"http://127.0.0.1:{port}/x", timeout=10).json()["replica"])
                except (httpx.HTTPError, ValueError) as exc:
                    failures.append(repr(exc))

    thread = threading.Thread(target=load)
    thread.start()
    try:
        time.sleep(0.5)
        assert door.fd.write_upstreams([replicas[1].port]) is True
        Runner().run(reload_argv(CADDY or "caddy", caddyfile, door.fd.admin), env=door.env)
        replicas[0].close()  # the old replica goes away right after the switch
        time.sleep(0.5)
    finally:
        stop.set()
        thread.join(timeout=30)
        door.stop()
    assert failures == []
    assert seen[0] == "a" and seen[-1] == "b" and len(seen) > 20
    assert door.fd.ports() == [replicas[1].port]


@needs_caddy
def test_acme_render_validates_and_refuses_a_name_no_ca_would_sign(tmp_path: Path) -> None:
    project, caddyfile = _render(
        tmp_path / "a", "domain=timetable.up.ac.za", "frontdoor.tls=auto", "frontdoor.acme_email=ops@up.ac.za"
    )
    FrontDoor(project / ".schedgen" / "run", project, Runner()).write_upstreams([18000])
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SCHEDGEN_FRONTDOOR_ADMIN": "unix//tmp/x.sock"}
    assert CADDY
    result = subprocess.run(
        validate_argv(CADDY, caddyfile), env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    adapted = subprocess.run(
        [CADDY, "adapt", "--config", str(caddyfile), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    config = json.loads(adapted.stdout)
    assert "internal" not in adapted.stdout  # no local CA: Caddy's default ACME issuers
    listens = {a for server in config["apps"]["http"]["servers"].values() for a in server["listen"]}
    assert listens == {"127.0.0.1:8000", "127.0.0.1:80"}  # HTTPS on ports.api, HTTP (redirect, ACME) on 80
    with pytest.raises(SchedgenError, match="not a public DNS name"):
        _render(tmp_path / "b", "frontdoor.tls=acme")  # schedule.example.org can never get a certificate


def test_upstreams_file_and_port_collisions(tmp_path: Path) -> None:
    assert upstreams_text([18001, 18000]) == "to 127.0.0.1:18001 127.0.0.1:18000\n"
    assert "to 127.0.0.1:9" in upstreams_text([])  # no replica: 502 at once, still a valid config
    project = tmp_path / "p"
    init_project(project, profile="small")
    with pytest.raises(Exception, match=r"include ports\.postgres"):
        load_config(project, environ={}, overrides=["frontdoor.upstream_port=5431"])
    with pytest.raises(Exception, match=r"must differ from ports\.api"):
        load_config(project, environ={}, overrides=["frontdoor.tls=internal", "frontdoor.http_port=8000"])


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_unit_for_the_local_stack_verifies(tmp_path: Path) -> None:
    project, _ = _render(tmp_path)
    unit = tmp_path / "out" / "systemd" / "schedgen-local.service"
    text = unit.read_text()
    assert f"ExecStart=/usr/bin/env schedgen --project {project} up" in text
    assert f"ExecStop=/usr/bin/env schedgen --project {project} down" in text
    assert f"PIDFile={project}/.schedgen/run/supervisord.pid" in text
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "schedgen-local.service" not in result.stderr, result.stderr  # no warning about our unit
