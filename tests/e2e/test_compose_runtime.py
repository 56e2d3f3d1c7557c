"""The compose runtime on a real Docker Engine: build the image, deploy from an empty project, parse the
three real PDFs through the published api, scale to three workers and back, roll back a deploy whose gate
fails, back up / deep-verify / damage / restore, keep data across `down` and deploy, and `down --volumes`
leaving nothing of the project behind.

The stack (tests/e2e/composekit.py) is shared with test_compose_rolling.py for the session; the rendered
files run unchanged apart from the stand-in image names. The tests run in file order; when the rolling
module ran first, the first deploy here is a rolling one onto its stack, which these tests accept.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import shared_path
from tests.dockerkit import base_image
from tests.e2e.composekit import ComposeStack

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]

REAL = {"UP_MOD_XLS.pdf": 46, "UP_TST_PDF.pdf": 12, "UP_EXAM_SS.pdf": 5}


@pytest.fixture(scope="module")
def stack(shared_compose_stack: ComposeStack) -> ComposeStack:
    for name in REAL:
        shared_path("fixtures", "up-pdfs", name)
    return shared_compose_stack


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
    body = stack.upload_and_wait(path)
    events = httpx.get(f"{stack.api}{body['events_url']}", timeout=30).json()
    return body["job_id"], events


def test_a_missing_image_is_reported_as_a_pull_error(stack: ComposeStack) -> None:
    """No registry is reachable here: the deploy must say it failed at pull, not at the health gate."""
    missing = f"schedgen-test/no-such-image-{stack.name}:1"
    before = stack.containers()
    result = stack.cli("deploy", "--target", "compose", "--set", f"redis.image={missing}", timeout=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"pulling {missing} failed" in result.stderr, result.stderr
    assert stack.containers() == before  # nothing started (or, on a live stack, nothing replaced)


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
    assert "canary" in deployed["gate"] and any(k.startswith("ready api-") for k in deployed["gate"])
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
        not_ok = [(c["id"], c["status"], c.get("measured")) for c in report["checks"] if c["status"] != "ok"]
        assert report["components"][name] == "ok", (name, not_ok)  # which check, and what it measured
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


def test_a_deploy_whose_gate_fails_never_replaces_the_serving_containers(stack: ComposeStack) -> None:
    """The new api containers start beside the serving ones and fail readiness: they are removed, the
    serving containers are the same ones afterwards, and the live release stays current."""
    live = json.loads(stack.ok("releases", "--json"))["current"]
    serving = stack.container_ids("api") | stack.container_ids("pdf-worker")
    result = stack.cli(
        "deploy", "--target", "compose", "--set", "service.readiness_timeout_s=0.0001",
        "--gate-timeout", "8", "--no-canary", timeout=900,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{live} kept serving" in result.stderr and "api ready" in result.stderr, result.stderr
    assert json.loads(stack.ok("releases", "--json"))["current"] == live
    assert stack.container_ids("api") | stack.container_ids("pdf-worker") == serving
    assert httpx.get(f"{stack.api}/readyz", timeout=10).status_code == 200
    _, events = _upload_and_wait(stack, shared_path("fixtures", "up-pdfs", "UP_EXAM_SS.pdf"))
    assert [len(t["events"]) for t in events["timetables"]] == [5]


def test_a_broken_image_under_the_same_tag_never_replaces_the_serving_containers(
    stack: ComposeStack,
) -> None:
    """A rebuilt tag that cannot start (the migrate one-shot runs it first): the serving containers are
    the same ones afterwards and the tag points again at the image id they run."""
    live = json.loads(stack.ok("releases", "--json"))["current"]
    serving = stack.container_ids("api") | stack.container_ids("pdf-worker")
    tag = f"schedgen-test/service-{stack.name}:0.1.0"
    good = stack.docker("image", "inspect", "--format", "{{.Id}}", tag).strip()
    stack.docker("tag", base_image(), tag)  # "a new build" without schedgen in it
    result = stack.cli("deploy", "--target", "compose", "--set", "service.log_level=DEBUG", timeout=900)
    assert result.returncode == 1, result.stdout + result.stderr
    # The migrate one-shot fails before any app container is touched; the rollback then starts nothing.
    assert f"rolled back to {live}" in result.stderr or f"{live} kept serving" in result.stderr, result.stderr
    assert json.loads(stack.ok("releases", "--json"))["current"] == live
    assert stack.docker("image", "inspect", "--format", "{{.Id}}", tag).strip() == good
    assert stack.container_ids("api") | stack.container_ids("pdf-worker") == serving
    assert stack.ready(), "the serving release does not answer after the failed deploy"


def test_backup_deep_verify_damage_restore(stack: ComposeStack) -> None:
    """With the workers stopped an upload stays pending, its bytes in the uploads volume: the backup must
    carry them, and after the database and the volume are damaged, restore --uploads brings both back and
    the job completes once the workers run again."""
    # Earlier tests' jobs must be finished first, or their upload files still in the volume skew the count.
    deadline = time.monotonic() + 120
    while stack.psql("SELECT count(*) FROM jobs WHERE status IN ('queued', 'processing')").strip() != "0":
        assert time.monotonic() < deadline, "earlier jobs never finished"
        time.sleep(0.5)
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
    assert stack.ready(), "the api did not come back after the restore"
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
