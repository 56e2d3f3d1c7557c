"""Live checks against the real service: `schedgen serve api` + `schedgen serve worker` started by the test
on real Postgres and Redis, plus backup manifests written with the backup library and load-test summaries."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from schedgen_ops.ops.readiness import Context, LiveTarget, evaluate
from schedgen_ops.ops.readiness.evaluate import run_check
from schedgen_ops.ops.readiness.registry import get

UPLOAD_LIMIT = 3


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def stack(tmp_path: Path, database_url: str) -> Iterator[tuple[str, str, str, str]]:
    """api on a free port and one worker process on a queue Redis of their own (AOF on, noeviction, as
    production runs it); rate_uploads lowered so the probe is quick."""
    from schedgen_ops.runtime.dataservices import RedisServer

    redis_server = RedisServer.start(tmp_path / "redis")
    redis_url = redis_server.url
    port, worker_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "SCHEDGEN_DATABASE_URL": database_url,
        "SCHEDGEN_REDIS_URL": redis_url,
        "SCHEDGEN_STORAGE_URL": f"file://{tmp_path / 'uploads'}",
        "SCHEDGEN_METRICS_DIR": str(tmp_path / "metrics"),
        "SCHEDGEN_RATE_UPLOADS": f"{UPLOAD_LIMIT}/hour",
        "SCHEDGEN_API_WORKERS": "1",
        "SCHEDGEN_WORKER_METRICS_PORT": str(worker_port),
    }
    (tmp_path / "metrics").mkdir()
    (tmp_path / "uploads").mkdir()
    cli = [sys.executable, "-m", "schedgen_ops.cli.main"]
    logs = (tmp_path / "api.log").open("w")
    worker_log = (tmp_path / "worker.log").open("w")
    api = subprocess.Popen(
        [*cli, "serve", "api", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=logs,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    worker = None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("api did not start: " + (tmp_path / "api.log").read_text()[-2000:])
        worker = subprocess.Popen(
            [*cli, "serve", "worker", "--processes", "1"],
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        yield url, database_url, redis_url, f"http://127.0.0.1:{worker_port}/metrics"
    finally:
        for proc in (worker, api):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
        logs.close()
        worker_log.close()
        redis_server.stop()


def _ctx(
    project: Path, url: str, database_url: str | None = None, limit: int = UPLOAD_LIMIT, **kw: object
) -> Context:
    """A live context; ``limit`` is the upload limit the configuration claims (service.rate_uploads)."""
    from types import SimpleNamespace

    kw.setdefault("timeout_s", 20.0)  # generous: the build machine is shared by parallel test runs
    live = LiveTarget(url=url, database_url=database_url, **kw)  # type: ignore[arg-type]
    return Context(
        project=project,
        live=live,
        config=SimpleNamespace(service=SimpleNamespace(rate_uploads=f"{limit}/hour")),
    )


@pytest.mark.e2e
def test_live_checks_against_the_real_service(stack: tuple[str, str, str, str], tmp_path: Path) -> None:
    url, database_url, redis_url, worker_metrics = stack
    ctx = _ctx(tmp_path, url, database_url, redis_url=redis_url, backup_dir=tmp_path / "backups")
    ready = run_check(get("live-readiness"), ctx)
    assert ready.status == "pass", (ready.message, ready.findings[0].evidence.value)

    # One real job (a synthetic UP lecture timetable) through the worker so the worker series exist.
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    pdf = render_pdf(generate_timetable("lectures", n_rows=3))
    response = httpx.post(url + "/api/uploads", files={"file": ("t.pdf", pdf, "application/pdf")}, timeout=10)
    assert response.status_code == 202, response.text
    status_url = httpx.URL(url).join(response.json()["status_url"])
    deadline, state = time.monotonic() + 90, None
    while time.monotonic() < deadline and state != "completed":
        time.sleep(1.0)  # stays under the status rate limit (100/min)
        state = httpx.get(status_url, timeout=5).json().get("status")
    assert state == "completed", (tmp_path / "worker.log").read_text()[-3000:]
    metrics = run_check(get("live-metrics"), ctx)
    assert metrics.status == "pass", [f.message for f in metrics.findings if not f.ok]
    # Worker series scraped from the worker's own metrics port (per-replica endpoints in production).
    own = run_check(get("live-metrics"), _ctx(tmp_path, url, worker_metrics_urls=[worker_metrics]))
    assert own.status == "pass", [f.message for f in own.findings if not f.ok]
    assert {f.evidence.file for f in own.findings if f.message.startswith("worker")} == {worker_metrics}
    gone = run_check(
        get("live-metrics"), _ctx(tmp_path, url, worker_metrics_urls=[f"http://127.0.0.1:{_free_port()}/m"])
    )
    assert gone.status == "fail" and "no worker metrics endpoint answered" in gone.message

    # limit + 1 uploads with a throw-away key: the last one is 429 with Retry-After; the key is revoked.
    limit = run_check(get("live-rate-limit"), ctx)
    assert limit.status == "pass", limit.message
    statuses = limit.findings[0].evidence.value["statuses"]
    assert len(statuses) == UPLOAD_LIMIT + 1 and statuses[-1] == 429
    # schedgen health on the same stack (its own library, same endpoints): healthy, exit 0. Its probes have
    # 2 s budgets, so on a machine loaded by parallel test runs allow a few attempts.
    for _ in range(3):
        health = run_check(get("live-health"), ctx)
        if health.status == "pass":
            break
        time.sleep(2)
    assert health.status == "pass", health.message

    # The same through the CLI: live checks selected with --only, JSON out, exit 0.
    from schedgen_ops.cli.main import main

    args = ["--project", str(tmp_path), "checklist", "--live", "--url", url, "--json"]
    assert main([*args, "--only", "live-readiness", "--only", "live-metrics"]) == 0

    from schedgen_ops.service import clients, db

    with db.connect(database_url) as conn:
        keys = clients.list_keys(conn)
    assert keys and all(k.revoked_at for k in keys if k.name.startswith("checklist-probe"))

    # A service enforcing a different limit than the configuration claims fails the probe.
    mismatch = run_check(get("live-rate-limit"), _ctx(tmp_path, url, database_url, limit=UPLOAD_LIMIT + 2))
    assert mismatch.status == "fail" and "before the configured limit" in mismatch.message

    # Fault: the queue Redis switched to an evicting policy -> health critical -> live-health fails.
    import redis

    client = redis.Redis.from_url(redis_url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    client.close()
    degraded = run_check(get("live-health"), ctx)
    assert degraded.status == "fail" and "exit 2" in degraded.message and "redis" in degraded.message
    assert mismatch.findings[0].evidence.value["statuses"][-1] == 429
    assert len(mismatch.findings[0].evidence.value["statuses"]) == UPLOAD_LIMIT + 1


def test_live_checks_fail_when_the_service_is_down(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, f"http://127.0.0.1:{_free_port()}")
    for check_id in ("live-readiness", "live-metrics"):
        result = run_check(get(check_id), ctx)
        assert result.status == "fail" and "failed" in result.message


def _pdf() -> bytes:
    from schedgen_ops.ops.readiness.checks_live import _minimal_pdf

    return _minimal_pdf()


def _backup(
    directory: Path, backup_id: str, started: datetime, verifications: list[tuple[str, str, datetime]]
) -> None:
    from schedgen_ops.ops.backup.manifest import Manifest, Verification, iso, write_manifest

    path = directory / backup_id
    path.mkdir(parents=True)
    history = [
        Verification(status=s, level=lv, verified_at=iso(at), duration_s=1.5) for s, lv, at in verifications
    ]  # type: ignore[arg-type]
    manifest = Manifest(
        id=backup_id,
        status="complete",
        target="local",
        started_at=iso(started),
        finished_at=iso(started + timedelta(minutes=1)),
        verification=history[-1] if history else None,
        verification_history=history,
    )
    write_manifest(path, manifest)


def test_backup_freshness_and_restore_drill(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    backups = tmp_path / "backups"
    ctx = _ctx(tmp_path, "http://127.0.0.1:9", backup_dir=backups)
    assert run_check(get("live-backup-fresh"), ctx).status == "fail"  # no backups at all
    _backup(
        backups, "20260101T000000Z", now - timedelta(days=3), [("passed", "deep", now - timedelta(days=3))]
    )
    fresh = run_check(get("live-backup-fresh"), ctx)
    assert fresh.status == "fail" and "h old" in fresh.message
    assert run_check(get("live-restore-drill"), ctx).status == "pass"
    _backup(
        backups,
        "20260102T000000Z",
        now - timedelta(hours=2),
        [("passed", "standard", now - timedelta(hours=1))],
    )
    assert run_check(get("live-backup-fresh"), ctx).status == "pass"
    _backup(backups, "20260103T000000Z", now - timedelta(hours=1), [("failed", "standard", now)])
    assert run_check(get("live-backup-fresh"), ctx).status == "fail"  # latest not verified


def test_restore_drill_older_than_30_days_fails(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    backups = tmp_path / "backups"
    _backup(
        backups, "20250101T000000Z", now - timedelta(days=40), [("passed", "deep", now - timedelta(days=31))]
    )
    result = run_check(get("live-restore-drill"), _ctx(tmp_path, "http://127.0.0.1:9", backup_dir=backups))
    assert result.status == "fail" and "31." in result.message


def _summary(directory: Path, scenario: str, passed: bool, finished: datetime) -> None:
    directory.mkdir(parents=True)
    doc = {
        "scenario": scenario,
        "passed": passed,
        "finished_at": finished.isoformat(),
        "thresholds": [{"name": "p95_ms", "passed": passed}],
    }
    (directory / "summary.json").write_text(json.dumps(doc))


def test_loadtest_reports(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    reports = tmp_path / "reports"
    ctx = _ctx(tmp_path, "http://127.0.0.1:9", report_dirs=[reports])
    _summary(reports / "a", "baseline", True, now - timedelta(days=1))
    _summary(reports / "b", "upload", True, now - timedelta(days=9))
    result = run_check(get("live-loadtests"), ctx)
    assert result.status == "fail"
    assert [f.ok for f in result.findings] == [True, False]
    _summary(reports / "c", "upload", False, now - timedelta(hours=1))
    assert "failed ['p95_ms']" in run_check(get("live-loadtests"), ctx).message
    _summary(reports / "d", "upload", True, now)
    assert run_check(get("live-loadtests"), ctx).status == "pass"


def test_runbook(tmp_path: Path) -> None:
    runbook = tmp_path / "RUNBOOK.md"
    ctx = _ctx(tmp_path, "http://127.0.0.1:9", runbook=runbook)
    assert run_check(get("live-runbook"), ctx).status == "fail"
    runbook.write_text("# Runbook\n\nRun `schedgen health` first.\n")
    assert run_check(get("live-runbook"), ctx).status == "pass"


def test_live_checks_only_run_with_live(tmp_path: Path) -> None:
    report = evaluate(Context(project=tmp_path), live=False)
    assert not [r for r in report.results if r.check.kind == "live"]


def test_live_defaults_come_from_the_active_local_deployment(tmp_path: Path) -> None:
    """Without --url, --live uses the local runtime's active tree: its api port, ledger URL and runbook."""
    from schedgen_ops.config.loader import load_config
    from schedgen_ops.config.secrets import ensure_secrets
    from schedgen_ops.ops.readiness.locate import DEFAULT_URL, local_deployment
    from schedgen_ops.render.engine import render_tree

    assert local_deployment(tmp_path).url == DEFAULT_URL  # nothing deployed yet
    secrets, _ = ensure_secrets(tmp_path)
    config = load_config(tmp_path, profile="small", overrides=["ports.api=18123"])
    render_tree(config, secrets, "local", tmp_path / "releases" / "r1", project_dir=tmp_path)
    (tmp_path / ".schedgen" / "run").mkdir(parents=True)
    (tmp_path / ".schedgen" / "run" / "active").symlink_to(tmp_path / "releases" / "r1")
    found = local_deployment(tmp_path)
    assert found.url == "http://127.0.0.1:18123"
    assert found.tree == tmp_path / "releases" / "r1"
    assert found.database_url and found.database_url.startswith("postgresql://")
    assert found.worker_metrics_urls and all(
        u.startswith("http://127.0.0.1:") for u in found.worker_metrics_urls
    )
    runbook = run_check(
        get("live-runbook"), _ctx(tmp_path, found.url, runbook=found.tree / "docs" / "RUNBOOK.md")
    )
    assert runbook.status == "pass", runbook.message
