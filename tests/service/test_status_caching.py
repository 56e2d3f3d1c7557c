"""Job status on the hot path: ETag / 304, Cache-Control, Retry-After, and the finished-job cache.

The cache may only ever answer for a finished job: these tests move a job through the ledger behind
the api's back and check every poll reports the ledger's state, until it is finished.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from stackkit import Stack, service_env

from schedgen_ops.service import ledger, queue
from schedgen_ops.service.status import (
    EXPIRY_MARGIN_S,
    TERMINAL_MAX_AGE_S,
    TerminalCache,
    render,
    retry_after_s,
)


def _job(status: str, *, expires_in_s: float | None = 3600.0, job_id: str = "a" * 32) -> ledger.Job:
    now = dt.datetime.now(dt.UTC)
    finished = status in ("completed", "failed")
    return ledger.Job(
        id=job_id,
        status=status,
        kind="lectures" if status == "completed" else None,
        priority="default",
        client_id="ip:127.0.0.1",
        filename="t.pdf",
        size_bytes=10,
        pages=1,
        sha256="0" * 64,
        storage_key=job_id,
        attempts=1 if status != "queued" else 0,
        max_attempts=3,
        created_at=now,
        updated_at=now,
        started_at=now if status != "queued" else None,
        finished_at=now if finished else None,
        error_code="corrupt_pdf" if status == "failed" else None,
        error_message="damaged" if status == "failed" else None,
        bytes_deleted=finished,
        expires_at=now + dt.timedelta(seconds=expires_in_s)
        if finished and expires_in_s is not None
        else None,
    )


@pytest.mark.parametrize("state", ["queued", "processing"])
def test_cache_refuses_states_that_can_change(state: str) -> None:
    cache = TerminalCache()
    job = _job(state)
    assert cache.put(job, render(job, 0)) is False
    assert cache.get(job.id) is None and len(cache) == 0


def test_cache_refuses_an_answer_of_another_state() -> None:
    cache = TerminalCache()
    assert cache.put(_job("completed"), render(_job("processing"), None)) is False
    assert cache.get("a" * 32) is None


def test_cache_holds_finished_jobs_within_ttl_and_expiry() -> None:
    cache = TerminalCache(max_entries=2, ttl_s=0.3)
    done, failed = _job("completed", job_id="1" * 32), _job("failed", job_id="2" * 32)
    assert cache.put(done, render(done, None)) and cache.put(failed, render(failed, None))
    cached = cache.get(done.id)
    assert cached is not None and cached.status == "completed"
    # The LRU bound: a third entry evicts the least recently used (failed; done was just read).
    third = _job("completed", job_id="3" * 32)
    assert cache.put(third, render(third, None))
    assert len(cache) == 2 and cache.get(failed.id) is None and cache.get(done.id) is not None
    time.sleep(0.35)  # the TTL bound
    assert cache.get(done.id) is None and cache.get(third.id) is None
    # Never past the job's own expiry (minus the skew margin): about to be purged -> not cached at all.
    soon = _job("completed", expires_in_s=EXPIRY_MARGIN_S - 1)
    assert cache.put(soon, render(soon, None)) is False


def test_render_headers_and_etag_matching() -> None:
    queued, done = render(_job("queued"), 4), render(_job("completed"), None)
    assert queued.headers["Retry-After"] == "2"  # 4 ahead
    assert [retry_after_s(p) for p in (None, 0, 1, 2, 10, 11, 500)] == [1, 1, 1, 2, 2, 5, 5]
    assert queued.headers["Cache-Control"] == "private, no-cache"
    assert b'"queue_position":4' in queued.body
    assert "Retry-After" not in done.headers
    assert done.headers["Cache-Control"] == f"private, max-age={TERMINAL_MAX_AGE_S}"
    assert render(_job("processing"), 4).headers.get("Retry-After") is None
    assert b'"queue_position":null' in render(_job("processing"), 4).body
    assert queued.etag != done.etag and queued.etag.startswith('"')
    assert done.matches(done.etag) and done.matches(f'"x", W/{done.etag}') and done.matches("*")
    assert not done.matches(queued.etag) and not done.matches(None) and not done.matches("")


def test_queue_position_counts_the_queues_ahead(redis_url: str) -> None:
    from redis import Redis

    conn = Redis.from_url(redis_url)
    conn.flushdb()
    for name, ids in (("high", ["h1", "h2"]), ("default", ["d1", "d2", "d3"]), ("low", ["l1"])):
        conn.rpush("rq:queue:" + name, *ids)
    assert queue.position(conn, "h2", "high") == 1
    assert queue.position(conn, "d3", "default") == 4
    assert queue.position(conn, "l1", "low") == 5
    assert queue.position(conn, "gone", "default") is None
    assert queue.position(conn, "d1", "nonsense") is None
    conn.flushdb()


def test_status_etag_retry_after_and_ledger_truth(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    api = service_stack()  # no workers: the job stays queued until this test moves it
    job_id = api.upload(synthetic_pdfs["exams"]).json()["job_id"]
    first = api.client.get(f"/api/jobs/{job_id}")
    assert first.status_code == 200 and first.json()["status"] == "queued"
    assert first.json()["queue_position"] == 0
    assert first.headers["Retry-After"] == "1"  # next in line
    assert first.headers["Cache-Control"] == "private, no-cache"
    etag = first.headers["ETag"]
    again = api.client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == etag
    other = api.client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": '"stale"'})
    assert other.status_code == 200 and other.json() == first.json()

    # Behind the api's back, through the ledger's own transitions: every poll tells the ledger's state.
    with psycopg.connect(database_url, autocommit=True) as conn:
        claimed = ledger.claim(conn, job_id)
        assert claimed is not None
        processing = api.client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": etag})
        assert processing.status_code == 200 and processing.json()["status"] == "processing"
        assert "Retry-After" not in processing.headers and processing.headers["ETag"] != etag
        assert ledger.requeue(conn, job_id, claimed.attempts, "worker_lost", "retry")
        assert api.client.get(f"/api/jobs/{job_id}").json()["status"] == "queued"
        claimed = ledger.claim(conn, job_id)
        assert claimed is not None
        assert api.client.get(f"/api/jobs/{job_id}").json()["status"] == "processing"
        assert ledger.fail(conn, job_id, claimed.attempts, "corrupt_pdf", "damaged", 3600)
        failed = api.client.get(f"/api/jobs/{job_id}")
        assert failed.json()["status"] == "failed" and failed.json()["error"]["code"] == "corrupt_pdf"
        assert failed.headers["Cache-Control"] == f"private, max-age={TERMINAL_MAX_AGE_S}"
        assert "Retry-After" not in failed.headers
        # Served from the cache now (the row is gone, the answer is not): same bytes, same ETag, 304.
        conn.execute("DELETE FROM jobs WHERE id = %s", (job_id,))
        cached = api.client.get(f"/api/jobs/{job_id}", headers={"If-None-Match": failed.headers["ETag"]})
        assert cached.status_code == 304
        assert api.client.get(f"/api/jobs/{job_id}").content == failed.content
    assert api.client.get("/api/jobs/" + "f" * 32).status_code == 404  # unknown ids are never cached


def test_status_survives_connections_killed_under_the_pool(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    api = service_stack()
    job_id = api.upload(synthetic_pdfs["tests"]).json()["job_id"]
    assert api.client.get(f"/api/jobs/{job_id}").status_code == 200
    kill = (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE pid <> pg_backend_pid() AND datname = current_database()"
        " AND backend_type = 'client backend'"
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        for wait_s in (0.0, 1.5):  # a connection used moments ago (no pool check), then an idle one
            assert conn.execute(kill).fetchall(), "no api connection to kill"
            time.sleep(wait_s)
            answer = api.client.get(f"/api/jobs/{job_id}")
            assert answer.status_code == 200 and answer.json()["status"] == "queued", answer.text


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the api's /metrics text (0 when absent)."""
    want = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        sample, _, value = line.rpartition(" ")
        if sample.startswith(name + "{"):
            found = ",".join(sorted(sample[len(name) + 1 : -1].split(",")))
            if found == want:
                return float(value)
    return 0.0


def test_a_cached_answer_keeps_the_envelope_limits_and_route_bytes(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    """A finished job's poll answered from the cache before routing is the route's answer, byte for byte,
    and still pays the envelope: request id, API-key check, status rate limit, metrics and access log."""
    api = service_stack(SCHEDGEN_RATE_STATUS="6/minute")
    job_id = api.upload(synthetic_pdfs["exams"]).json()["job_id"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        claimed = ledger.claim(conn, job_id)
        assert claimed is not None
        assert ledger.fail(conn, job_id, claimed.attempts, "corrupt_pdf", "damaged", 3600)
    url = f"/api/jobs/{job_id}"
    routed = api.client.get(url)  # a miss: the route reads the ledger and caches the answer
    cached = api.client.get(url, headers={"X-Request-ID": "poll-2"})  # a hit, answered before routing
    assert routed.status_code == cached.status_code == 200 and cached.content == routed.content
    for name in ("content-type", "content-length", "etag", "cache-control"):
        assert cached.headers[name] == routed.headers[name], name
    assert cached.headers["X-Request-ID"] == "poll-2" and routed.headers["X-Request-ID"] != "poll-2"
    assert int(cached.headers["X-RateLimit-Remaining"]) == int(routed.headers["X-RateLimit-Remaining"]) - 1
    not_modified = api.client.get(url, headers={"If-None-Match": routed.headers["ETag"]})
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert (
        not_modified.headers["ETag"] == routed.headers["ETag"] and "content-type" not in not_modified.headers
    )
    # An unknown API key is refused before the cache is looked at (and costs nothing of the status limit).
    assert api.client.get(url, headers={"X-API-Key": "sgk_" + "0" * 8 + "_" + "x" * 32}).status_code == 401
    codes = [api.client.get(url).status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # 6 per minute: the cache does not skip the limit
    scrape = api.client.get("/metrics").text
    route = {"method": "GET", "route": "/api/jobs/{job_id}"}
    assert _metric(scrape, "schedgen_http_requests_total", status="200", **route) == 5
    assert _metric(scrape, "schedgen_http_requests_total", status="304", **route) == 1
    assert _metric(scrape, "schedgen_http_requests_total", status="429", **route) == 1
    logs = "\n".join(proc.output() for proc in api.procs)
    hit = next(line for line in logs.splitlines() if '"request_id": "poll-2"' in line)
    assert '"route": "/api/jobs/{job_id}"' in hit and '"status": 200' in hit


def test_the_envelope_answers_every_poll_as_the_route_would(
    database_url: str,
    redis_url: str,
    synthetic_pdfs: dict[str, bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The envelope answers `GET /api/jobs/{id}` itself; with that turned off the route answers. For a
    queued, a processing, a failed and an unknown job, a malformed id and the database down: the same
    status, bytes and headers (but the rate-limit counters)."""
    from fastapi.testclient import TestClient

    from schedgen_ops.service.app import create_app
    from schedgen_ops.service.middleware import Envelope
    from schedgen_ops.service.settings import ServiceSettings

    for key, value in service_env(database_url, redis_url, tmp_path).items():
        monkeypatch.setenv(key, value)
    answered_by_envelope = Envelope._job_status

    async def route_only(self: Envelope, request: Any, path: str) -> None:
        return None

    def compare(client: TestClient, url: str) -> Any:
        same_id = {"X-Request-ID": "parity"}  # error bodies carry it
        by_envelope = client.get(url, headers=same_id)
        monkeypatch.setattr(Envelope, "_job_status", route_only)
        try:
            by_route = client.get(url, headers=same_id)
        finally:
            monkeypatch.setattr(Envelope, "_job_status", answered_by_envelope)
        skip = {"x-ratelimit-remaining", "x-ratelimit-reset", "date"}
        assert (by_envelope.status_code, by_envelope.content) == (by_route.status_code, by_route.content)
        assert {k: v for k, v in by_envelope.headers.items() if k not in skip} == {
            k: v for k, v in by_route.headers.items() if k not in skip
        }
        return by_envelope

    with TestClient(create_app(ServiceSettings()), base_url="http://127.0.0.1") as client:
        upload = client.post(
            "/api/uploads", files={"file": ("t.pdf", synthetic_pdfs["exams"], "application/pdf")}
        )
        assert upload.status_code == 202, upload.text
        job_id = upload.json()["job_id"]
        url = f"/api/jobs/{job_id}"
        assert compare(client, url).json()["status"] == "queued"
        with psycopg.connect(database_url, autocommit=True) as conn:
            claimed = ledger.claim(conn, job_id)
            assert claimed is not None
            assert compare(client, url).json()["status"] == "processing"
            assert ledger.fail(conn, job_id, claimed.attempts, "corrupt_pdf", "damaged", 3600)
        assert compare(client, url).json()["status"] == "failed"
        assert compare(client, "/api/jobs/" + "f" * 32).json()["error"]["code"] == "job_not_found"
        assert compare(client, "/api/jobs/not-an-id").status_code == 404

        def database_down(*args: Any) -> None:
            raise psycopg.OperationalError("connection refused")

        monkeypatch.setattr(ledger, "get_job", database_down)
        down = compare(client, "/api/jobs/" + "d" * 32)
        assert down.status_code == 503 and down.json()["error"]["code"] == "database_unavailable"
