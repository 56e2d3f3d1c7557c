"""Job status on the hot path: ETag / 304, Cache-Control, Retry-After, the finished-job cache and the
queued-row cache.

The finished-job cache may only ever answer for a finished job, the queued-row cache only while Redis
shows the job's enqueue still waiting: these tests move a job through the ledger behind the api's back,
taking it off its queue first as a worker does, and check every poll reports the ledger's state.
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


def _take_off_the_queue(redis_url: str, job_id: str) -> None:
    """What a worker does before it claims a job: RQ pops the job's id off its queue."""
    from redis import Redis

    with Redis.from_url(redis_url) as conn:
        removed = sum(int(conn.lrem("rq:queue:" + name, 0, job_id)) for name in queue.QUEUE_NAMES)
    assert removed == 1, "the job was not waiting on a queue"


@pytest.fixture
def in_process_api(
    database_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Any]:
    """``in_process_api(**env)``: a TestClient on the api app, in this process (so a test can patch and
    count its reads), configured as `service_env` plus ``env`` (SCHEDGEN_* names without the prefix)."""
    from fastapi.testclient import TestClient

    from schedgen_ops.service.app import create_app
    from schedgen_ops.service.settings import ServiceSettings

    def open_api(**env: str) -> TestClient:
        for key, value in service_env(database_url, redis_url, tmp_path).items():
            monkeypatch.setenv(key, value)
        for key, value in env.items():
            monkeypatch.setenv("SCHEDGEN_" + key.upper(), value)
        return TestClient(create_app(ServiceSettings()), base_url="http://127.0.0.1")

    return open_api


def _upload(client: Any, pdf: bytes) -> str:
    """Upload ``pdf`` through ``client``; the new job's id."""
    upload = client.post("/api/uploads", files={"file": ("t.pdf", pdf, "application/pdf")})
    assert upload.status_code == 202, upload.text
    return str(upload.json()["job_id"])


def test_status_etag_retry_after_and_ledger_truth(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str, redis_url: str
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
    _take_off_the_queue(redis_url, job_id)
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
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str, redis_url: str
) -> None:
    api = service_stack()
    job_id = api.upload(synthetic_pdfs["tests"]).json()["job_id"]
    # A processing job: no cache answers for it, so every poll below reads the ledger.
    _take_off_the_queue(redis_url, job_id)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert ledger.claim(conn, job_id) is not None
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
            assert answer.status_code == 200 and answer.json()["status"] == "processing", answer.text


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
    in_process_api: Callable[..., Any],
    database_url: str,
    redis_url: str,
    synthetic_pdfs: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The envelope answers `GET /api/jobs/{id}` itself; with that turned off the route answers. For a
    queued (read from the ledger, then from the queued-row cache), a processing, a failed and an unknown
    job, a malformed id and the database down: the same status, bytes and headers (but the rate-limit
    counters)."""
    from fastapi.testclient import TestClient

    from schedgen_ops.service.middleware import Envelope
    from schedgen_ops.service.status_reads import StatusReads

    answered_by_envelope = Envelope._job_status

    async def route_only(self: Envelope, request: Any, path: str, prefetch: Any) -> None:
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

    with in_process_api() as client:
        job_id = _upload(client, synthetic_pdfs["exams"])
        url = f"/api/jobs/{job_id}"
        assert compare(client, url).json()["status"] == "queued"
        assert compare(client, url).json()["status"] == "queued"  # from the queued-row cache, prefetched
        _take_off_the_queue(redis_url, job_id)
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

        async def database_down_on_loop(*args: Any) -> None:
            raise psycopg.OperationalError("connection refused")

        # Both ways a status is read: the sync pool's (thread hop) and the status pool's (event loop).
        monkeypatch.setattr(ledger, "get_job", database_down)
        monkeypatch.setattr(StatusReads, "_select", database_down_on_loop)
        down = compare(client, "/api/jobs/" + "d" * 32)
        assert down.status_code == 503 and down.json()["error"]["code"] == "database_unavailable"


@pytest.mark.parametrize("budget", [1, 2, 3, 4, 5, 8, 10, 40])
def test_the_status_pool_is_a_share_of_the_connection_budget(budget: int) -> None:
    """The api's two pools together open at most ``db_pool_max`` connections (config.model's budget)."""
    from schedgen_ops.service.status_reads import status_pool_size, sync_pool_size

    share = status_pool_size(budget)
    assert share + sync_pool_size(budget) == budget
    assert sync_pool_size(budget) >= 1
    assert share == 0 if budget < 4 else share >= 1  # too small a budget: polls use the sync pool


def test_queued_polls_skip_the_ledger_only_while_redis_shows_the_same_enqueue(
    in_process_api: Callable[..., Any],
    database_url: str,
    redis_url: str,
    synthetic_pdfs: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A queued job's second poll is answered from the queued-row cache (no ledger read); every way the
    row can change (a worker takes the job, it is re-enqueued, its RQ hash changes or goes, Redis fails)
    sends the next poll back to the ledger, and the answer is always the ledger's."""
    from redis import Redis

    from schedgen_ops.service.ratelimit import RateLimits
    from schedgen_ops.service.settings import ServiceSettings
    from schedgen_ops.service.status_reads import StatusReads

    reads: list[str] = []
    select = StatusReads._select

    async def counted(self: StatusReads, job_id: str) -> ledger.Job | None:
        reads.append(job_id)
        return await select(self, job_id)

    monkeypatch.setattr(StatusReads, "_select", counted)
    waits: list[str] = []  # the status path's own Redis reads (a prefetched poll sends none)
    waiting = StatusReads.waiting

    async def counted_waiting(
        self: StatusReads, job_id: str, priority: str
    ) -> tuple[int | None, bytes | None]:
        waits.append(job_id)
        return await waiting(self, job_id, priority)

    monkeypatch.setattr(StatusReads, "waiting", counted_waiting)
    with (
        in_process_api(db_pool_max="8") as client,  # a status pool of its own (`status_pool_size`)
        Redis.from_url(redis_url) as r,
    ):
        settings = ServiceSettings()
        first, second = (_upload(client, synthetic_pdfs["exams"]) for _ in range(2))
        url = f"/api/jobs/{second}"

        def poll() -> tuple[dict[str, Any], str, int]:
            before = len(reads)
            answer = client.get(url)
            assert answer.status_code == 200, answer.text
            return answer.json(), answer.headers["ETag"], len(reads) - before

        body, etag, ledger_reads = poll()
        assert (body["status"], body["queue_position"], ledger_reads) == ("queued", 1, 1)
        waits.clear()
        again, same_etag, ledger_reads = poll()
        assert (again, same_etag, ledger_reads) == (body, etag, 0)  # the cache, byte for byte
        assert waits == []  # validated in the rate limit's round trip (`RateLimits.hit_with`)

        # The job ahead is taken: the position moves, the answer and its ETag change, still no ledger read.
        assert r.lrem("rq:queue:default", 0, first) == 1
        moved, moved_etag, ledger_reads = poll()
        assert (moved["queue_position"], ledger_reads) == (0, 0) and moved_etag != etag

        # Re-enqueued (RQ writes a new enqueued_at): the ledger answers, then the cache again.
        time.sleep(0.01)
        queue.enqueue(r, settings, second, "default")
        assert r.lrem("rq:queue:default", 1, second) == 1  # the older of the two entries
        assert poll()[2] == 1 and poll()[2] == 0

        # Its enqueued_at rewritten, then its hash gone: the ledger answers each time.
        r.hset("rq:job:" + second, "enqueued_at", "2026-01-01T00:00:00.000000Z")
        assert poll()[2] == 1
        r.delete("rq:job:" + second)
        gone, _, ledger_reads = poll()
        assert (gone["status"], gone["queue_position"], ledger_reads) == ("queued", 0, 1)
        assert poll()[2] == 1  # no marker: nothing was cached

        # Back on its queue and cached; then Redis fails the poll's read: the ledger answers without it.
        queue.enqueue(r, settings, second, "default")
        assert r.lrem("rq:queue:default", 1, second) == 1
        assert poll()[2] == 1 and poll()[2] == 0

        async def redis_down(*args: Any) -> None:
            raise ConnectionError("redis down")

        with monkeypatch.context() as down:
            down.setattr(StatusReads, "waiting", redis_down)
            down.setattr(StatusReads, "marker", redis_down)
            down.setattr(RateLimits, "_incr_ttl_and", redis_down)  # the limit falls back to this process
            blind, _, ledger_reads = poll()
            assert (blind["status"], blind["queue_position"], ledger_reads) == ("queued", None, 1)
            assert poll()[2] == 1
        assert poll()[2] == 1 and poll()[2] == 0

        # On its queue twice (enqueued again while waiting), cached; a worker takes one copy and RQ marks
        # the job started before the claim: the copy left waiting does not keep the queued answer alive.
        queue.enqueue(r, settings, second, "default")
        assert r.lrange("rq:queue:default", 0, -1).count(second.encode()) == 2
        assert poll()[2] == 1 and poll()[2] == 0
        assert r.lrem("rq:queue:default", 1, second) == 1
        r.hset("rq:job:" + second, "status", "started")
        with psycopg.connect(database_url, autocommit=True) as conn:
            assert ledger.claim(conn, second) is not None
        processing, _, ledger_reads = poll()
        assert (processing["status"], ledger_reads) == ("processing", 1)
        assert poll()[2] == 1


def test_a_change_outside_the_service_is_stale_at_most_the_ttl(
    in_process_api: Callable[..., Any], database_url: str, synthetic_pdfs: dict[str, bytes]
) -> None:
    """An operator's SQL on a queued row leaves Redis as it was: the cached row answers until its TTL."""
    with in_process_api(db_pool_max="8") as client:
        client.app.state.service.queued_cache.ttl_s = 0.5
        job_id = _upload(client, synthetic_pdfs["exams"])
        url = f"/api/jobs/{job_id}"
        assert client.get(url).json()["status"] == "queued"
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE jobs SET status = 'failed', error_code = 'x', finished_at = now(),"
                " expires_at = now() + interval '1 hour' WHERE id = %s",
                (job_id,),
            )
        assert client.get(url).json()["status"] == "queued"  # the cached row, within its TTL
        time.sleep(0.6)
        assert client.get(url).json()["status"] == "failed"


def test_the_queued_cache_keeps_only_waiting_queued_rows_and_is_bounded() -> None:
    from schedgen_ops.service.queued_cache import QueuedCache

    cache = QueuedCache(max_entries=3)
    queued = _job("queued", expires_in_s=None)
    answer = render(queued, 4)
    assert not cache.put(_job("processing", expires_in_s=None), b"m", 4, answer)
    assert not cache.put(queued, None, 4, answer)  # no enqueue marker read
    assert not cache.put(queued, b"m", None, answer)  # not on its queue
    assert len(cache) == 0
    for index in range(5):
        assert cache.put(_job("queued", expires_in_s=None, job_id=f"{index:032x}"), b"m", 1, answer)
    assert len(cache) == 3 and cache.get(f"{0:032x}") is None and cache.get(f"{4:032x}") is not None
    entry = cache.get(f"{4:032x}")
    assert entry is not None
    assert cache.answer(entry, 1, b"m") is answer  # same position, same bytes
    assert cache.answer(entry, 0, b"m") is not answer  # rendered again at the new position
    assert cache.answer(entry, 0, b"other") is None and cache.get(f"{4:032x}") is None  # dropped


def test_a_prefetched_queued_poll_still_spends_its_limit_and_survives_a_lost_script(
    in_process_api: Callable[..., Any], redis_url: str, synthetic_pdfs: dict[str, bytes]
) -> None:
    """The queued-row reads ride on the status limit's round trip: the limit still counts every poll and
    refuses the one over it; a Redis that lost the script (SCRIPT FLUSH, as after a restart) is given it
    again and the poll is answered."""
    from redis import Redis

    with in_process_api(db_pool_max="8", rate_status="4/minute") as client, Redis.from_url(redis_url) as r:
        url = f"/api/jobs/{_upload(client, synthetic_pdfs['exams'])}"
        first = client.get(url)  # the ledger, then cached
        assert first.status_code == 200 and first.headers["X-RateLimit-Remaining"] == "3"
        assert client.get(url).headers["X-RateLimit-Remaining"] == "2"  # prefetched
        r.script_flush()
        lost = client.get(url)
        assert lost.status_code == 200 and lost.content == first.content
        assert lost.headers["X-RateLimit-Remaining"] == "1"  # counted once, not twice
        assert client.get(url).headers["X-RateLimit-Remaining"] == "0"
        refused = client.get(url)
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1


def test_the_pool_gauges_count_both_pools_of_an_api_process(
    in_process_api: Callable[..., Any],
    database_url: str,
    redis_url: str,
    synthetic_pdfs: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`schedgen_db_pool_connections` sums the sync pool and the status pool (on-call sees the whole
    budget), and a poll that reads the ledger is served by the status pool, its enqueue marker read in the
    rate limit's round trip (no Redis read of its own)."""
    from schedgen_ops.service.status_reads import StatusReads

    own_reads: list[str] = []

    async def no_own_read(self: StatusReads, job_id: str) -> bytes | None:
        own_reads.append(job_id)
        return None

    monkeypatch.setattr(StatusReads, "marker", no_own_read)
    with in_process_api(db_pool_max="8") as client:
        job_id = _upload(client, synthetic_pdfs["exams"])
        _take_off_the_queue(redis_url, job_id)
        with psycopg.connect(database_url, autocommit=True) as conn:
            assert ledger.claim(conn, job_id) is not None  # processing: every poll reads the ledger
        state = client.app.state.service
        assert state.reads.pool is not None
        before = state.reads.pool.get_stats().get("requests_num", 0)
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == "processing"
        assert state.reads.pool.get_stats().get("requests_num", 0) == before + 1
        assert own_reads == []
        text = client.get("/metrics").text
        opened = sum(pool.get_stats()["pool_size"] for pool in (state.ctx.pool, state.reads.pool))
        gauged = _metric(text, "schedgen_db_pool_connections", state="in_use") + _metric(
            text, "schedgen_db_pool_connections", state="idle"
        )
        assert state.reads.pool.get_stats()["pool_size"] >= 1 and gauged == opened
        # Of the 8: 4 for status polls, 4 for the sync pool, of which key lookups may hold at most half.
        assert (state.reads.pool.max_size, state.ctx.pool.max_size, state.lookups._value) == (4, 4, 2)


def test_a_status_poll_waits_for_a_pool_connection_once(
    in_process_api: Callable[..., Any], database_url: str, redis_url: str, synthetic_pdfs: dict[str, bytes]
) -> None:
    """Every status connection busy: the poll answers 503 database_unavailable after one acquire timeout,
    not two (a timed-out wait is not a dead connection, so it is not retried)."""
    with in_process_api(db_pool_max="4", db_acquire_timeout_s="1.0") as client:
        job_id = _upload(client, synthetic_pdfs["exams"])
        _take_off_the_queue(redis_url, job_id)
        with psycopg.connect(database_url, autocommit=True) as conn:
            assert ledger.claim(conn, job_id) is not None  # processing: the poll reads the ledger
        state = client.app.state.service
        assert state.reads.pool is not None and state.reads.pool.max_size == 2
        held: list[Any] = []

        async def take_all() -> None:
            held.extend([await state.reads.pool.getconn() for _ in range(2)])

        async def give_back() -> None:
            for conn in held:
                await state.reads.pool.putconn(conn)

        client.portal.call(take_all)  # on the app's loop, where the pool lives
        try:
            started = time.monotonic()
            busy = client.get(f"/api/jobs/{job_id}")
            waited = time.monotonic() - started
        finally:
            client.portal.call(give_back)
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "database_unavailable", busy.text
        assert 0.9 <= waited < 1.9, waited  # one wait of 1 s; a retry would take 2
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == "processing"
