"""`rq_worker.LeanWorker` against a real Redis: fewer commands per job, the same RQ outcomes (results,
retries, failures, the worker key and its TTL)."""

from __future__ import annotations

import pytest
import redis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from schedgen_ops.service import rq_worker
from schedgen_ops.service.queue import RESULT_TTL_S
from schedgen_ops.service.rq_worker import LeanWorker


def _commands(conn: redis.Redis) -> int:
    return int(conn.info("stats")["total_commands_processed"])


def _drain(worker_class: type[SimpleWorker], conn: redis.Redis, jobs: int) -> tuple[list[Job], int]:
    """Enqueue ``jobs`` additions, run a burst worker over them; (the jobs, Redis commands it took)."""
    queue = Queue("default", connection=conn)
    enqueued = [queue.enqueue("operator.add", i, 1, result_ttl=RESULT_TTL_S) for i in range(jobs)]
    worker = worker_class([queue], connection=conn)
    before = _commands(conn)
    worker.work(burst=True)
    return enqueued, _commands(conn) - before


def test_lean_worker_sends_fewer_commands_for_the_same_results(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    plain_jobs, plain = _drain(SimpleWorker, conn, 20)
    lean_jobs, lean = _drain(LeanWorker, conn, 20)
    for job in plain_jobs + lean_jobs:
        job.refresh()
        assert job.get_status() == JobStatus.FINISHED
        assert 0 < conn.ttl(job.key) <= RESULT_TTL_S  # expires on its own, no delete path
    assert [job.return_value() for job in lean_jobs] == [i + 1 for i in range(20)]
    assert FinishedJobRegistry("default", connection=conn).count == 40
    # Per job 3 repeated heartbeats (3 commands each), a repeated state write, the job's end stamp.
    assert lean <= plain - 20 * 11, (plain, lean)


def test_lean_worker_retries_and_fails_like_rq(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=conn)
    job = queue.enqueue("operator.truediv", 1, 0, retry=Retry(max=1), result_ttl=RESULT_TTL_S)
    LeanWorker([queue], connection=conn).work(burst=True)
    job.refresh()
    assert job.get_status() == JobStatus.FAILED
    assert job.retries_left == 0  # attempted twice: the retry was taken
    assert job.id in FailedJobRegistry("default", connection=conn)
    assert "ZeroDivisionError" in (job.latest_result().exc_string or "")  # type: ignore[union-attr]


def test_heartbeat_is_skipped_only_when_a_long_enough_one_is_recent(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = redis.Redis.from_url(redis_url)
    clock = [1000.0]
    monkeypatch.setattr(rq_worker.time, "monotonic", lambda: clock[0])
    worker = LeanWorker([Queue("default", connection=conn)], connection=conn)
    worker.register_birth()
    default_ttl = worker.worker_ttl + 60

    def beat_written(**kwargs: object) -> bool:
        conn.hset(worker.key, "last_heartbeat", "marker")
        worker.heartbeat(**kwargs)  # type: ignore[arg-type]
        return conn.hget(worker.key, "last_heartbeat") != b"marker"

    assert beat_written()  # the first one
    assert conn.ttl(worker.key) > default_ttl - 5
    assert not beat_written()  # the same TTL, just sent
    assert beat_written(timeout=default_ttl + 100)  # a longer TTL is always written
    assert conn.ttl(worker.key) > default_ttl + 90
    with conn.pipeline() as pipe:  # inside RQ's own pipelines: always written
        conn.hset(worker.key, "last_heartbeat", "marker")
        worker.heartbeat(pipeline=pipe)
        pipe.execute()
    assert conn.hget(worker.key, "last_heartbeat") != b"marker"
    assert not beat_written(timeout=60)  # a shorter TTL than the key has left: nothing to extend
    with conn.pipeline() as pipe:  # RQ sets the job timeout's (shorter) TTL in its pipeline ...
        worker.heartbeat(timeout=60, pipeline=pipe)
        pipe.execute()
    assert conn.ttl(worker.key) <= 60
    assert beat_written()  # ... so the default one after it is written, never skipped over
    assert conn.ttl(worker.key) > default_ttl - 5
    clock[0] += rq_worker.HEARTBEAT_MIN_INTERVAL_S
    assert beat_written()  # and after the interval anyway
    assert conn.ttl(worker.key) > default_ttl - 5


def test_state_write_is_skipped_only_when_it_repeats(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    worker = LeanWorker([Queue("default", connection=conn)], connection=conn)
    worker.register_birth()
    worker.set_state("idle")
    assert conn.hget(worker.key, "state") == b"idle"
    conn.hset(worker.key, "state", "marker")
    worker.set_state("idle")
    assert conn.hget(worker.key, "state") == b"marker"  # repeated: not written
    worker.set_state("busy")
    assert conn.hget(worker.key, "state") == b"busy"


def test_idle_state_after_a_job_goes_out_with_the_suspension_check(redis_url: str) -> None:
    """The order of RQ's loop after a job: heartbeat, then `check_for_suspension` (a pipelined one)."""
    conn = redis.Redis.from_url(redis_url)
    queue = Queue("default", connection=conn)
    enqueued = queue.enqueue("operator.add", 2, 3, result_ttl=RESULT_TTL_S)
    worker = LeanWorker([queue], connection=conn)
    worker.register_birth()
    dequeued = Queue.dequeue_any([queue], None, connection=conn)
    assert dequeued is not None
    job, origin = dequeued
    worker.execute_job(job, origin)
    assert enqueued.latest_result().return_value == 5  # type: ignore[union-attr]
    assert worker.get_state() == "idle"
    assert conn.hget(worker.key, "state") == b"busy"  # not written yet ...
    conn.hset(worker.key, "last_heartbeat", "marker")
    worker.heartbeat()  # RQ's heartbeat right after the job: left to the suspension check
    assert conn.hget(worker.key, "last_heartbeat") == b"marker"
    worker.check_for_suspension(burst=False)
    assert conn.hget(worker.key, "state") == b"idle"  # ... written with the suspension check's pipeline
    assert conn.hget(worker.key, "last_heartbeat") != b"marker"
    assert conn.ttl(worker.key) > worker.worker_ttl
    conn.hset(worker.key, "last_heartbeat", "marker")
    worker.heartbeat(timeout=worker.worker_ttl + 100)  # any other heartbeat is written as before
    assert conn.hget(worker.key, "last_heartbeat") != b"marker"
