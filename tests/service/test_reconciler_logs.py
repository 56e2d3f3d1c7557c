"""Retention purge through the real api and worker, and the JSON logs (ids present, secrets and PDF bytes
absent)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import psycopg
import pytest
from stackkit import OPS_TOKEN, Stack

from schedgen_ops.service.config import load_settings
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.reconciler import reconcile_once


def test_retention_purges_finished_jobs_and_never_a_waiting_upload(
    service_stack: Callable[..., Stack],
    synthetic_pdfs: dict[str, bytes],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With 1 s retention: a completed job goes with its result; an upload no worker took stays."""
    stack = service_stack(SCHEDGEN_RESULT_TTL_S="1", SCHEDGEN_FAILED_TTL_S="1")
    worker = stack.start_worker(1, "--no-reconcile")
    done = stack.upload(synthetic_pdfs["exams"]).json()["job_id"]
    assert stack.wait_done(done)["status"] == "completed"
    worker.stop()  # a worker outage: the next upload waits
    waiting = stack.upload(synthetic_pdfs["tests"]).json()["job_id"]
    for key, value in stack.env.items():
        if key.startswith("SCHEDGEN_"):
            monkeypatch.setenv(key, value)
    time.sleep(2.5)  # the completed job is past its 1 s retention (from when it finished)
    ctx = ServiceContext.create(load_settings(), name="test")
    try:
        report = reconcile_once(ctx)
    finally:
        ctx.close()
    assert report.purged == 1
    assert stack.client.get(f"/api/jobs/{done}").status_code == 404
    status = stack.client.get(f"/api/jobs/{waiting}")
    assert status.status_code == 200 and status.json()["status"] == "queued"
    assert [p.stem for p in (stack.workdir / "uploads").glob("*.pdf")] == [waiting]  # its bytes are kept
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT id, expires_at FROM jobs").fetchall() == [(waiting, None)]
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (0,)


def test_logs_are_json_with_ids_and_without_secrets(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = service_stack(workers=1)
    job = stack.upload(synthetic_pdfs["tests"], headers={"X-Request-ID": "trace-42"}).json()
    stack.client.get("/api/queue", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert stack.wait_done(job["job_id"])["status"] == "completed"
    time.sleep(0.5)
    entries = []
    for proc in stack.procs:
        for line in proc.output().splitlines():
            if line.strip():
                entries.append(json.loads(line))  # every line is one JSON object
    upload_line = [e for e in entries if e.get("request_id") == "trace-42"]
    assert upload_line and upload_line[0]["client_id"] == "ip:127.0.0.1"
    assert upload_line[0]["route"] == "/api/uploads" and upload_line[0]["status"] == 202
    worker_lines = [e for e in entries if e.get("job_id") == job["job_id"] and e["component"] == "worker"]
    assert any(e["msg"] == "job completed" for e in worker_lines)
    text = "\n".join(proc.output() for proc in stack.procs)
    assert OPS_TOKEN not in text
    assert "%PDF" not in text
