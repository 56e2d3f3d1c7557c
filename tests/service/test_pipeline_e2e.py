"""Whole pipeline with real api and worker processes: results equal the offline parse, exactly once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest
from stackkit import Stack

from schedgen_ops.parsing import parse_pdf
from schedgen_ops.parsing.export import to_json
from schedgen_ops.parsing.ics import to_ics
from schedgen_ops.parsing.semesters import resolve_semester

REAL_PDFS = ["UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf"]


def _without_dtstamp(ics: bytes) -> str:
    return re.sub(r"DTSTAMP:[0-9TZ]+\r\n", "", ics.decode())


def test_real_pdfs_end_to_end_equal_the_offline_parse(
    service_stack: Callable[..., Stack], up_pdf: Callable[[str], Path]
) -> None:
    stack = service_stack(workers=1)
    jobs = {}
    for name in REAL_PDFS:
        response = stack.upload(up_pdf(name).read_bytes(), filename=name)
        assert response.status_code == 202, response.text
        jobs[name] = response.json()
    for name, job in jobs.items():
        done = stack.wait_done(job["job_id"])
        assert done["status"] == "completed", done
        assert done["attempts"] == 1 and done["error"] is None and done["finished_at"]
        offline = parse_pdf(up_pdf(name))
        assert done["kind"] == offline.kind
        events = stack.client.get(job["events_url"])
        assert events.status_code == 200
        assert events.json() == to_json([offline])
        dates = resolve_semester("S2")
        calendar = stack.client.get(job["calendar_url"], params={"semester": "S2"})
        assert calendar.status_code == 200, calendar.text
        assert calendar.headers["content-type"].startswith("text/calendar")
        expected = to_ics([offline], date_from=dates.start, date_until=dates.end, semester="S2")
        assert _without_dtstamp(calendar.content) == _without_dtstamp(expected)
    lectures = jobs["UP_MOD_XLS.pdf"]
    params = {"from": "2026-07-20", "until": "2026-10-23"}
    everything = stack.client.get(lectures["calendar_url"], params=params).content
    grouped = stack.client.get(lectures["calendar_url"], params={**params, "group": "COS 214=G01"})
    assert grouped.status_code == 200
    assert 0 < grouped.content.count(b"BEGIN:VEVENT") < everything.count(b"BEGIN:VEVENT")
    no_dates = stack.client.get(lectures["calendar_url"])
    assert no_dates.status_code == 422 and no_dates.json()["error"]["code"] == "date_range_required"
    # Bytes are gone once the jobs completed.
    assert list((stack.workdir / "uploads").glob("*.pdf")) == []


def test_not_a_timetable_fails_the_job_with_its_code(
    service_stack: Callable[..., Stack], up_pdf: Callable[[str], Path]
) -> None:
    stack = service_stack(workers=1)
    job = stack.upload(up_pdf("not-a-timetable.pdf").read_bytes(), filename="x.pdf").json()
    done = stack.wait_done(job["job_id"])
    assert done["status"] == "failed" and done["attempts"] == 1  # deterministic: not retried
    assert done["error"]["code"] == "not_a_timetable"
    events = stack.client.get(job["events_url"])
    assert events.status_code == 409
    assert list((stack.workdir / "uploads").glob("*.pdf")) == []


def test_200_concurrent_uploads_complete_exactly_once(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    stack = service_stack(workers=2, api_workers=2, SCHEDGEN_RATE_UPLOADS="100000/hour")
    kinds = list(synthetic_pdfs)

    def upload(i: int) -> tuple[str, str]:
        kind = kinds[i % len(kinds)]
        with httpx.Client(base_url=stack.base_url, timeout=60) as client:
            response = client.post(
                "/api/uploads", files={"file": (f"{i}.pdf", synthetic_pdfs[kind], "application/pdf")}
            )
        assert response.status_code == 202, response.text
        return response.json()["job_id"], kind

    with ThreadPoolExecutor(max_workers=40) as pool:
        submitted = list(pool.map(upload, range(200)))
    ids = {job_id for job_id, _ in submitted}
    assert len(ids) == 200
    for job_id, _ in submitted:
        stack.wait_done(job_id, timeout=120)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT id, status, attempts, kind FROM jobs").fetchall()
        results = conn.execute("SELECT job_id, kind FROM results").fetchall()
    assert {row[0] for row in rows} == ids
    assert {(row[1], row[2]) for row in rows} == {("completed", 1)}
    assert sorted(r[0] for r in results) == sorted(ids)  # one result per job, none duplicated
    assert dict(results) == {job_id: kind for job_id, kind in submitted}
    metrics = stack.client.get("/metrics").text  # api and worker processes share the metrics dir
    completed = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("schedgen_jobs_total{") and 'status="completed"' in line
    )
    assert completed == 200
    assert 'schedgen_uploads_total{outcome="accepted"} 200.0' in metrics
    assert list((stack.workdir / "uploads").glob("*.pdf")) == []
    # A completed attempt releases its job lock with its last write (bytes_deleted): none is left held
    # on the workers' pooled connections, and every row records its bytes as gone.
    with psycopg.connect(database_url) as conn:
        for _ in range(50):
            held, kept = conn.execute(
                "SELECT (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'),"
                " (SELECT count(*) FROM jobs WHERE NOT bytes_deleted)"
            ).fetchone() or (None, None)
            if held == 0 and kept == 0:
                break
            time.sleep(0.1)
    assert (held, kept) == (0, 0)


@pytest.mark.parametrize("name", ["UP_EXAM_SS.pdf"])
def test_uploads_survive_an_api_without_workers(
    service_stack: Callable[..., Stack], up_pdf: Callable[[str], Path], name: str
) -> None:
    """Jobs accepted while no worker runs wait queued and complete once a worker starts."""
    stack = service_stack()
    job = stack.upload(up_pdf(name).read_bytes(), filename=name).json()
    assert stack.client.get(job["status_url"]).json()["status"] == "queued"
    stack.start_worker(1, "--burst")
    assert stack.wait_done(job["job_id"])["status"] == "completed"
