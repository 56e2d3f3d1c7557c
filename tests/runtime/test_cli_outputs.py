"""Output shapes of status / logs / releases / audit / deploy --dry-run / scale, human and --json.

compose status reads the stand-in Docker engine (recorded Engine API responses, tests/runtime/conftest.py);
kubernetes status runs a stand-in ``kubectl`` on PATH that prints recorded kubectl JSON; local logs read
real log files of a rendered tree. Nothing here starts the stack (tests/e2e does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from schedgen_ops.config import load_config, load_secrets
from schedgen_ops.config.project import init_project
from schedgen_ops.render import render_tree
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.audit import AuditLog
from schedgen_ops.runtime.logview import follow_files, line_time, parse_since, read_files
from schedgen_ops.runtime.releases import ReleaseStore

KUBECTL_RESPONSES = Path(__file__).parent / "kubectl_responses"
FAKE_KUBECTL = f"""#!{sys.executable}
import sys, pathlib
args = sys.argv[1:]
rec = pathlib.Path({str(KUBECTL_RESPONSES)!r})
with open(pathlib.Path(__file__).with_name("calls.log"), "a") as log:
    log.write(" ".join(args) + "\\n")
joined = " ".join(args)
if "get deployments" in joined:
    print((rec / "deployments.json").read_text())
elif "get pods" in joined:
    print((rec / ("pods-api.json" if "component=api" in joined else "pods-worker.json")).read_text())
elif "top pods" in joined and "component=api" in joined:
    print((rec / "top-api.txt").read_text(), end="")
elif "top pods" in joined:
    print("error: Metrics API not available", file=sys.stderr)
    sys.exit(1)
else:
    sys.exit(0)
"""


def cli(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    base.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(project), *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=120,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    init_project(tmp_path / "p")
    return tmp_path / "p"


def test_compose_status_from_the_engine_json_and_human(
    project: Path, engine_server: tuple[str, list]
) -> None:
    url, _ = engine_server
    result = cli(project, "status", "--target", "compose", "--json", env={"DOCKER_HOST": url})
    assert result.returncode == 1, result.stderr  # pdf-worker runs 1 of 2: degraded
    data = json.loads(result.stdout)
    assert data["target"] == "compose" and data["lock"] is None
    services = {s["name"]: s for s in data["services"]}
    api, worker = services["api"], services["pdf-worker"]
    assert (api["desired"], api["running"], api["health"]) == (1, 1, "ok")
    assert api["cpu_percent"] == 50.0 and api["memory_bytes"] == 209_715_200 - 10_485_760
    assert api["processes"][0]["health"] == "healthy" and api["processes"][0]["uptime_s"] > 0
    assert (worker["desired"], worker["running"], worker["health"]) == (2, 1, "degraded")
    assert worker["restarts"] == 5  # 1 + 4 from the two containers' RestartCount
    assert [p["state"] for p in worker["processes"]] == ["running", "exited"]
    human = cli(project, "status", "--target", "compose", env={"DOCKER_HOST": url})
    lines = human.stdout.splitlines()
    assert lines[0] == "target compose, release none"
    assert lines[1].split() == ["service", "running", "health", "uptime", "restarts", "cpu", "memory"]
    api_row = next(line.split() for line in lines if line.split()[:1] == ["api"])
    assert api_row[1:3] == ["1/1", "ok"] and api_row[5] == "50.0%" and api_row[6:] == ["190.0", "MiB"]
    worker_row = next(line.split() for line in lines if line.split()[:1] == ["pdf-worker"])
    assert worker_row[1:3] == ["1/2", "degraded"] and worker_row[4] == "5"


def test_kubernetes_status_from_recorded_kubectl_output(tmp_path: Path) -> None:
    init_project(tmp_path / "p", profile="large")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "kubectl").write_text(FAKE_KUBECTL)
    (bindir / "kubectl").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    result = cli(tmp_path / "p", "status", "--target", "kubernetes", "--json", env=env)
    data = json.loads(result.stdout)
    services = {s["name"]: s for s in data["services"]}
    assert (services["api"]["desired"], services["api"]["running"], services["api"]["health"]) == (5, 5, "ok")
    assert services["api"]["cpu_percent"] == 135.0  # 250m + 1100m
    assert services["api"]["memory_bytes"] == 300 * 2**20 + 2**30
    assert services["api"]["restarts"] == 2
    worker = services["pdf-worker"]
    assert (worker["desired"], worker["running"], worker["health"]) == (10, 9, "degraded")
    assert worker["cpu_percent"] is None  # no metrics-server: shown as unknown, not an error
    assert [p["health"] for p in worker["processes"]] == ["ready", "not ready"]
    assert result.returncode == 1  # degraded
    calls = (bindir / "calls.log").read_text().splitlines()
    assert (
        " ".join(
            A.kubectl_get_json(
                A.KubeTarget("schedgen"), "deployments", selector="app.kubernetes.io/managed-by=schedgen"
            )[1:]
        )
        in calls
    )


def test_local_status_when_nothing_runs(project: Path) -> None:
    result = cli(project, "status", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["services"] == []
    human = cli(project, "status")
    assert "not running" in human.stdout and human.returncode == 1


def _active_local_tree(project: Path) -> Path:
    config = load_config(project, environ={})
    staging = project / "staged"
    render_tree(config, load_secrets(project), "local", staging, project_dir=project)
    store = ReleaseStore(project / ".schedgen")
    release = store.create(staging, target="local", profile=config.profile)
    store.set_current(release.id)
    run = project / ".schedgen" / "run"
    run.mkdir(parents=True, exist_ok=True)
    (run / "active").symlink_to(store.tree(release.id))
    return store.tree(release.id)


def test_local_logs_merge_replicas_in_time_order_with_filters(project: Path) -> None:
    _active_local_tree(project)
    logs = project / ".schedgen" / "logs"
    logs.mkdir(parents=True)
    (logs / "pdf-worker-blue-1.log").write_text(
        '{"ts": "2026-11-28T10:00:01.000Z", "msg": "job A started"}\n'
        "Traceback (most recent call last):\n"
        '{"ts": "2026-11-28T10:00:05.000Z", "msg": "job C done"}\n'
    )
    (logs / "pdf-worker-blue-2.log").write_text('{"ts": "2026-11-28T10:00:03.000Z", "msg": "job B done"}\n')
    result = cli(project, "logs", "pdf-worker", "-n", "3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "pdf-worker-blue-1 | Traceback (most recent call last):",
        'pdf-worker-blue-2 | {"ts": "2026-11-28T10:00:03.000Z", "msg": "job B done"}',
        'pdf-worker-blue-1 | {"ts": "2026-11-28T10:00:05.000Z", "msg": "job C done"}',
    ]
    grep = cli(project, "logs", "pdf-worker", "--grep", "DONE")
    names = [line.split(" | ")[0] for line in grep.stdout.splitlines()]
    assert names == ["pdf-worker-blue-2", "pdf-worker-blue-1"]
    since = cli(project, "logs", "pdf-worker", "--since", "2026-11-28T10:00:04")
    assert since.stdout.count("\n") == 1 and "job C done" in since.stdout
    bad = cli(project, "logs", "pdf-worker", "--since", "yesterday")
    assert bad.returncode == 2 and "neither a duration nor a timestamp" in bad.stderr
    unknown = cli(project, "logs", "nginx")
    assert unknown.returncode == 2 and "no service 'nginx'" in unknown.stderr


def test_log_line_times_and_since() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    assert parse_since("10m", now) == datetime(2026, 11, 28, 11, 50, tzinfo=UTC)
    assert parse_since("2h", now) == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert line_time("2026-11-28 13:00:00.123 UTC [42] LOG:  checkpoint") == datetime(
        2026, 11, 28, 13, 0, tzinfo=UTC
    )
    assert line_time("1234:M 28 Nov 2026 13:00:01.5 * Ready") == datetime(2026, 11, 28, 13, 0, 1, tzinfo=UTC)
    assert line_time("no time here") is None


def test_follow_yields_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "api-1.log"
    path.write_text("old line\n")
    lines = follow_files([path], poll_s=0.02)

    def append() -> None:
        time.sleep(0.1)
        with path.open("a") as handle:
            handle.write("new line\npartial")

    threading.Thread(target=append).start()
    assert next(lines) == "api-1 | new line"
    assert list(read_files([path], tail=1)) == ["api-1 | partial"]


def test_deploy_dry_run_prints_every_compose_command(project: Path) -> None:
    result = cli(project, "deploy", "--target", "compose", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    staging = project.resolve() / ".schedgen" / "staging" / "compose"
    compose = A.ComposeProject(
        "schedgen", (staging / "docker-compose.yml", staging / "docker-compose.prod.yml")
    )
    assert json.loads(result.stdout)["commands"] == [
        A.compose_config_check(compose),
        A.compose_up(compose, scale={"api": 1, "pdf-worker": 2}),
    ]
    assert "(dry run) $ docker compose -p schedgen" in result.stderr
    assert ReleaseStore(project / ".schedgen").history() == []  # a dry run records no release
    assert AuditLog.for_project(project).tail()[-1]["result"] == "dry-run"


def test_kubernetes_deploy_and_scale_dry_run(tmp_path: Path) -> None:
    project = tmp_path / "p"
    init_project(project, profile="large")
    result = cli(project, "deploy", "--target", "kubernetes", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    k = A.KubeTarget("schedgen")
    kdir = project.resolve() / ".schedgen" / "staging" / "kubernetes"
    assert json.loads(result.stdout)["commands"] == [
        A.kubectl_apply(k, kdir, server_dry_run=True),
        A.kubectl_apply(k, kdir),
        A.kubectl_rollout_status(k, "api"),
        A.kubectl_rollout_status(k, "pdf-worker"),
    ]
    scaled = cli(project, "scale", "--target", "kubernetes", "--dry-run", "pdf-worker=12", "api=6")
    assert scaled.returncode == 0, scaled.stderr
    assert "$ " + " ".join(A.kubectl_patch_scaledobject(k, "pdf-worker", 12, 50)[:-1]) in scaled.stderr
    assert "$ " + " ".join(A.kubectl_patch_hpa(k, "api", 6, 20)[:-1]) in scaled.stderr


def test_scale_bounds_and_usage_errors(project: Path) -> None:
    out = cli(project, "scale", "--target", "compose", "--dry-run", "pdf-worker=9")
    assert out.returncode == 1 and "outside the profile's bounds 1..3 (profile small)" in out.stderr
    assert cli(project, "scale", "pdf-worker").returncode == 2
    assert cli(project, "scale", "nginx=2").returncode == 2


def test_scale_refused_while_the_lock_is_held(project: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; from pathlib import Path; from schedgen_ops.runtime.lock import DeployLock\n"
            "with DeployLock(Path(sys.argv[1]), 'deploy', release='r1'):\n"
            "    print('held', flush=True); time.sleep(30)",
            str(project / ".schedgen"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        out = cli(project, "scale", "--target", "compose", "--dry-run", "pdf-worker=2")
        assert out.returncode == 1
        assert (
            "deploy by" in out.stderr and f"(pid {holder.pid})" in out.stderr and "release r1" in out.stderr
        )
        status = json.loads(cli(project, "status", "--json").stdout)
        assert status["lock"]["pid"] == holder.pid and status["lock"]["action"] == "deploy"
        entry = AuditLog.for_project(project).tail()[-1]
        assert (
            entry["action"] == "scale"
            and entry["result"] == "refused: locked"
            and entry["holder"]["pid"] == holder.pid
        )
    finally:
        holder.kill()
        holder.wait()


def test_releases_and_audit_outputs(project: Path) -> None:
    _active_local_tree(project)
    AuditLog.for_project(project).append("deploy", result="ok", release="x", duration_s=1.5)
    data = json.loads(cli(project, "releases", "--json").stdout)
    assert data["current"] == data["releases"][0]["id"] and data["releases"][0]["status"] == "live"
    human = cli(project, "releases").stdout.splitlines()
    assert human[1].split()[:3] == ["*", data["current"], "live"]
    entries = [json.loads(line) for line in cli(project, "audit", "--json").stdout.splitlines()]
    assert entries[-1]["action"] == "deploy" and entries[-1]["duration_s"] == 1.5
    assert "1.5s" in cli(project, "audit").stdout


def test_exec_runs_with_the_service_environment(project: Path) -> None:
    _active_local_tree(project)
    probe = (
        "import os; e = os.environ; "
        "print(e['SCHEDGEN_DATABASE_URL'].split('@')[1], e['SCHEDGEN_STORAGE_URL'][:7])"
    )
    result = cli(project, "exec", "pdf-worker", "--", sys.executable, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["127.0.0.1:5432/schedgen", "file://"]
    failing = cli(project, "exec", "api", "--", sys.executable, "-c", "raise SystemExit(7)")
    assert failing.returncode == 7
    assert cli(project, "exec", "postgres", "--", "true").returncode == 2
    compose = cli(project, "exec", "api", "--target", "compose", "--", "schedgen", "db", "migrate")
    assert "$ docker compose -p schedgen -f " in compose.stderr  # echoed before it runs (no engine here)
    assert "exec -T --index 1 api schedgen db migrate" in compose.stderr


def test_compose_scale_runs_the_golden_argv_and_status_desires_it(
    project: Path, tmp_path: Path, engine_server: tuple[str, list]
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "docker").write_text(
        f"#!{sys.executable}\nimport sys, pathlib\n"
        "pathlib.Path(__file__).with_name('calls.log').open('a').write('\\0'.join(sys.argv[1:]) + '\\n')\n"
    )
    (bindir / "docker").chmod(0o755)
    _active_local_tree(project)  # any current release; the compose files come from --target's tree
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "DOCKER_HOST": engine_server[0]}
    result = cli(project, "scale", "--target", "compose", "pdf-worker=3", env=env)
    assert result.returncode == 0, result.stderr
    call = (bindir / "calls.log").read_text().splitlines()[-1].split("\0")
    tree = ReleaseStore(project / ".schedgen").tree(ReleaseStore(project / ".schedgen").current_id() or "")
    compose = A.ComposeProject(
        "schedgen", (tree / "compose" / "docker-compose.yml", tree / "compose" / "docker-compose.prod.yml")
    )
    assert ["docker", *call] == A.compose_scale(compose, {"pdf-worker": 3})
    status = json.loads(cli(project, "status", "--target", "compose", "--json", env=env).stdout)
    worker = next(s for s in status["services"] if s["name"] == "pdf-worker")
    assert worker["desired"] == 3  # remembered in .schedgen/scale.json
    entry = AuditLog.for_project(project).tail()[-1]
    assert (
        entry["action"] == "scale" and entry["counts"] == {"pdf-worker": 3} and entry["target"] == "compose"
    )
