"""Reconciler retention purge and the JSON logs (ids present, secrets and PDF bytes absent)."""

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


def test_reconciler_purges_expired_jobs_results_and_bytes(
    service_stack: Callable[..., Stack],
    synthetic_pdfs: dict[str, bytes],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stack = service_stack(SCHEDGEN_RESULT_TTL_S="1", SCHEDGEN_FAILED_TTL_S="1")
    queued = stack.upload(synthetic_pdfs["exams"]).json()["job_id"]  # never processed: expires in 2 s
    assert len(list((stack.workdir / "uploads").glob("*.pdf"))) == 1
    for key, value in stack.env.items():
        if key.startswith("SCHEDGEN_"):
            monkeypatch.setenv(key, value)
    ctx = ServiceContext.create(load_settings(), name="test")
    try:
        assert reconcile_once(ctx).purged == 0  # not expired yet
        time.sleep(2.5)
        report = reconcile_once(ctx)
    finally:
        ctx.close()
    assert report.purged == 1
    assert list((stack.workdir / "uploads").glob("*.pdf")) == []
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert stack.client.get(f"/api/jobs/{queued}").status_code == 404


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
