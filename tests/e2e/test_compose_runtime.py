"""The compose runtime on a real Docker Engine: build the image, deploy from an empty project, parse the
three real PDFs through the published api, scale to three workers and back, roll back a deploy whose gate
fails, back up / deep-verify / damage / restore, keep data across `down` and deploy, and `down --volumes`
leaving nothing of the project behind.

Images: the service image is built by `schedgen build` on a debootstrap Debian base; Postgres and Redis
are stand-ins from Debian packages with the official images' interfaces (tests/dockerkit). The rendered
files run unchanged apart from those image names. Traefik and the monitoring stack cannot run here, so the
stack runs with edge.enabled and monitoring.enabled false (the api published on 127.0.0.1).

The tests run in file order against one stack (module fixture).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from schedgen_ops.runtime.dataservices import free_port_block, service_tempdir
from tests.conftest import shared_path
from tests.dockerkit import base_image, ensure_compose_plugin, require_docker, standin_image

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]

REAL = {"UP_MOD_XLS.pdf": 46, "UP_TST_PDF.pdf": 12, "UP_EXAM_SS.pdf": 5}


class ComposeStack:
    def __init__(self, project: Path, api_port: int, name: str):
        self.project = project
        self.name = name
        self.api = f"http://127.0.0.1:{api_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}

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

    def psql(self, sql: str) -> str:
        return self.ok("exec", "postgres", "--", "psql", "-U", "schedgen", "-d", "schedgen", "-tAc", sql)


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    for name in REAL:
        shared_path("fixtures", "up-pdfs", name)
    require_docker()
    ensure_compose_plugin()
    base = base_image()
    postgres, redis = standin_image("postgres"), standin_image("redis")
    root = service_tempdir("schedgen-e2e-compose-")
    project = root / "project"
    project.mkdir()
    api_port = free_port_block(2)
    name = f"sgtest{os.getpid()}"
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
        "service.rate_uploads": "100000/hour",
        "service.rate_status": "100000/minute",
        "service.rate_requests": "100000/minute",
    }.items():
        s.ok("config", "set", key, value)
    started = time.monotonic()
    s.ok("build", "--base-image", base, timeout=900)
    s.build_s = time.monotonic() - started  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.cli("down", "--volumes", timeout=300)
        subprocess.run(["docker", "image", "rm", "-f", f"schedgen-test/service-{name}:0.1.0"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _upload(stack: ComposeStack, path: Path) -> dict[str, str]:
    response = httpx.post(
        f"{stack.api}/api/uploads",
        files={"file": (path.name, path.read_bytes(), "application/pdf")},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    body: dict[str, str] = response.json()
    return body


def _wait(stack: ComposeStack, status_url: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    status: dict = {}
    while time.monotonic() < deadline:
        status = httpx.get(f"{stack.api}{status_url}", timeout=10).json()
        if status["status"] in ("completed", "failed"):
            break
        time.sleep(0.3)
    return status


def _upload_and_wait(stack: ComposeStack, path: Path) -> tuple[str, dict]:
    with httpx.Client(timeout=30) as client:
        accepted = client.post(
            f"{stack.api}/api/uploads", files={"file": (path.name, path.read_bytes(), "application/pdf")}
        )
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            status = client.get(f"{stack.api}{body['status_url']}").json()
            if status["status"] in ("completed", "failed"):
                break
            time.sleep(0.3)
        assert status["status"] == "completed", status
        events = client.get(f"{stack.api}{body['events_url']}").json()
        return body["job_id"], events


def test_a_missing_image_is_reported_as_a_pull_error(stack: ComposeStack) -> None:
    """No registry is reachable here: the deploy must say it failed at pull, not at the health gate."""
    missing = f"schedgen-test/no-such-image-{stack.name}:1"
    result = stack.cli("deploy", "--target", "compose", "--set", f"redis.image={missing}", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"pulling {missing} failed" in result.stderr, result.stderr
    assert stack.containers() == []


def test_build_without_an_engine_says_how_to_start_one(stack: ComposeStack) -> None:
    env = {**stack.env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    result = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(stack.project), "build"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no Docker engine answers at unix:///nonexistent")
    assert "start it" in lines[0] and "Traceback" not in result.stderr


def test_deploy_parses_the_real_pdfs_through_the_published_api(stack: ComposeStack) -> None:
    deployed = json.loads(stack.ok("deploy", "--target", "compose", "--json", timeout=900))
    assert deployed["target"] == "compose" and deployed["canary_job"]
    assert "canary" in deployed["gate"] and "ready api-1" in deployed["gate"]
    for name, expected in REAL.items():
        job_id, events = _upload_and_wait(stack, shared_path("fixtures", "up-pdfs", name))
        assert [len(t["events"]) for t in events["timetables"]] == [expected], name
        stack.first_job = getattr(stack, "first_job", job_id)  # type: ignore[attr-defined]
    # The image carries the version and commit labels `schedgen build` put on it.
    labels = json.loads(
        stack.docker(
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}}",
            "schedgen-test/service-" + stack.name + ":0.1.0",
        )
    )
    assert labels["io.schedgen.version"] == "0.1.0" and labels["io.schedgen.commit"]
    status = json.loads(stack.ok("status", "--json"))
    assert {s["name"]: s["running"] for s in status["services"]}["api"] == 1
    assert all(s["health"] == "ok" for s in status["services"]), status


def test_health_reaches_the_stack_without_a_tunnel_and_ends_within_5s_when_postgres_hangs(
    stack: ComposeStack,
) -> None:
    result = stack.cli("health", "--json", timeout=60)
    report = json.loads(result.stdout)
    assert report["target"] == "compose"
    for name in ("api", "postgres", "redis", "queue"):
        assert report["components"][name] == "ok", (name, report["checks"])
    postgres = stack.containers("postgres")[0]
    stack.docker("pause", postgres)
    try:
        started = time.monotonic()
        hung = stack.cli("health", "--json", timeout=60)
        elapsed = time.monotonic() - started
    finally:
        stack.docker("unpause", postgres)
    assert elapsed < 6.0, f"health took {elapsed:.1f}s with postgres paused"
    assert hung.returncode == 2, hung.stdout
    components = json.loads(hung.stdout)["components"]
    assert components["postgres"] == "critical" and components["redis"] == "ok", components


def test_loadtest_reaches_compose_over_http_only(stack: ComposeStack, tmp_path: Path) -> None:
    """Keys come from the api with the ops token: no --database-url, no access to Postgres."""
    result = stack.cli(
        "loadtest", "baseline", "--target", "compose", "--time-scale", "0.06", "--users-scale", "0.3",
        "--report", str(tmp_path), "--json", timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["passed"] is True and summary["endpoints"], summary


def test_scale_workers_to_three_and_back(stack: ComposeStack) -> None:
    stack.ok("scale", "pdf-worker=3")
    assert len(stack.containers("pdf-worker")) == 3
    # Scaling down while jobs run: the stopped workers finish theirs (no job is retried or lost).
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    pdf = render_pdf(generate_timetable("lectures", seed=3, pages=3))
    with httpx.Client(timeout=30) as client:
        accepted = [
            client.post(f"{stack.api}/api/uploads", files={"file": ("t.pdf", pdf, "application/pdf")}).json()
            for _ in range(12)
        ]
    stack.ok("scale", "pdf-worker=1")
    assert len(stack.containers("pdf-worker")) == 1
    final = [_wait(stack, body["status_url"]) for body in accepted]
    assert {f["status"] for f in final} == {"completed"}, final
    assert all(f["attempts"] == 1 for f in final), "a scale-down interrupted a job (it was retried)"
    logs = stack.ok("logs", "pdf-worker", "-n", "200")
    assert "pdf-worker" in logs or "rq.worker" in logs
    refused = stack.cli("scale", "pdf-worker=9")
    assert refused.returncode == 1 and "outside the profile's bounds" in refused.stderr


def test_a_deploy_whose_gate_fails_rolls_back(stack: ComposeStack) -> None:
    live = json.loads(stack.ok("releases", "--json"))["current"]
    result = stack.cli(
        "deploy", "--target", "compose", "--set", "service.readiness_timeout_s=0.0001",
        "--gate-timeout", "15", "--no-canary", timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"rolled back to {live}" in result.stderr, result.stderr
    assert json.loads(stack.ok("releases", "--json"))["current"] == live
    assert httpx.get(f"{stack.api}/readyz", timeout=10).status_code == 200
    _, events = _upload_and_wait(stack, shared_path("fixtures", "up-pdfs", "UP_EXAM_SS.pdf"))
    assert [len(t["events"]) for t in events["timetables"]] == [5]


def test_a_broken_image_under_the_same_tag_is_rolled_back_to_the_image_that_was_live(
    stack: ComposeStack,
) -> None:
    """A rebuilt tag that cannot start: the rollback re-tags the image id the live release ran."""
    live = json.loads(stack.ok("releases", "--json"))["current"]
    tag = f"schedgen-test/service-{stack.name}:0.1.0"
    good = stack.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
    stack.docker("tag", base_image(), tag)  # "a new build" without schedgen in it
    result = stack.cli("deploy", "--target", "compose", "--set", "service.log_level=DEBUG", timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"rolled back to {live}" in result.stderr, result.stderr
    assert stack.docker("image", "inspect", "--format", "{{.Id}}", tag).strip() == good
    assert _ready(stack), "the earlier release does not answer after the rollback"


def test_backup_deep_verify_damage_restore(stack: ComposeStack) -> None:
    """With the workers stopped an upload stays pending, its bytes in the uploads volume: the backup must
    carry them, and after the database and the volume are damaged, restore --uploads brings both back and
    the job completes once the workers run again."""
    for worker in stack.containers("pdf-worker"):
        stack.docker("stop", worker)
    pending = _upload(stack, shared_path("fixtures", "up-pdfs", "UP_TST_PDF.pdf"))
    count_files = ["exec", "api", "--", "sh", "-c", "find /data/uploads -type f | wc -l"]
    assert stack.ok(*count_files).strip() == "1"
    before = int(stack.psql("SELECT count(*) FROM jobs").strip())
    assert before >= 5
    backup = json.loads(stack.ok("backup", "--json"))
    assert backup["target"] == "compose" and backup["uploads"]["objects"] == 1, backup["uploads"]
    backup_id = backup["id"]
    verified = json.loads(stack.ok("backup", "verify", backup_id, "--deep", "--json", timeout=600))
    assert verified["verification"]["status"] == "passed", verified
    assert verified["verification"]["level"] == "deep"
    stack.psql("DELETE FROM jobs")
    stack.ok("exec", "api", "--", "sh", "-c", "find /data/uploads -type f -delete")
    assert int(stack.psql("SELECT count(*) FROM jobs").strip()) == 0
    assert stack.ok(*count_files).strip() == "0"
    restored = json.loads(
        stack.ok("restore", backup_id, "--yes", "--uploads", "--no-health", "--json", timeout=600)
    )
    assert sorted(restored["stopped"]) == ["api", "pdf-worker"] == sorted(restored["restarted"]), restored
    assert restored["upload_objects"] == 1 and restored["safety_backup_id"], restored
    assert int(stack.psql("SELECT count(*) FROM jobs").strip()) == before
    assert _ready(stack), "the api did not come back after the restore"
    # `restore` started every worker container again: the restored pending upload is parsed.
    assert _wait(stack, pending["status_url"])["status"] == "completed"


def test_the_scheduled_backup_unit_backs_up_and_verifies_the_compose_stack(stack: ComposeStack) -> None:
    """What the rendered systemd timer runs (ExecStart of schedgen-backup.service), run here by hand."""
    release = json.loads(stack.ok("releases", "--json"))["current"]
    unit = stack.project / ".schedgen" / "releases" / release / "tree" / "systemd" / "schedgen-backup.service"
    command = next(line for line in unit.read_text().splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(command.removeprefix("ExecStart="))
    before = {b["id"] for b in json.loads(stack.ok("backup", "list", "--json"))["backups"]}
    env = {**stack.env, "PATH": f"{Path(sys.executable).parent}:{stack.env.get('PATH', '')}"}
    result = subprocess.run(argv, cwd=stack.project, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    after = json.loads(stack.ok("backup", "list", "--json"))["backups"]
    new = [b for b in after if b["id"] not in before]
    assert len(new) == 1 and new[0]["verification"]["status"] == "passed", new


def _ready(stack: ComposeStack, timeout_s: float = 90) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.api}/readyz", timeout=5).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(1)
    return False


def test_down_keeps_data_and_a_new_deploy_serves_it(stack: ComposeStack) -> None:
    stack.ok("down")
    assert stack.containers() == []
    assert any(stack.name in v for v in stack.docker("volume", "ls", "--format", "{{.Name}}").split())
    stack.ok("deploy", "--target", "compose", "--no-canary", timeout=900)
    body = httpx.get(f"{stack.api}/api/jobs/{stack.first_job}", timeout=10).json()  # type: ignore[attr-defined]
    assert body["status"] == "completed", body


def test_down_volumes_leaves_nothing(stack: ComposeStack) -> None:
    stack.ok("down", "--volumes")
    label = f"label=com.docker.compose.project={stack.name}"
    assert stack.docker("ps", "-a", "--filter", label, "--format", "{{.Names}}").strip() == ""
    assert stack.docker("network", "ls", "--filter", label, "--format", "{{.Name}}").strip() == ""
    assert stack.docker("volume", "ls", "--filter", label, "--format", "{{.Name}}").strip() == ""
