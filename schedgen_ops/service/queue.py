"""The RQ transport: three priority queues on the queue Redis, carrying only job ids.

The RQ job id is the ledger's job id, so the reconciler can ask Redis whether a job the ledger calls
``queued`` is still on its way to a worker.
"""

from __future__ import annotations

import time
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from schedgen_ops.service.settings import ServiceSettings

QUEUE_NAMES = ("high", "default", "low")
TASK = "schedgen_ops.service.tasks.process_job"
_PENDING = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}


def redis_client(settings: ServiceSettings, *, timeout_s: float = 5.0) -> Redis:
    """A Redis client with bounded socket timeouts (a dead Redis fails fast instead of hanging)."""
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
    )


def queues(conn: Redis) -> list[Queue]:
    """The queues in priority order (workers listen to all three, high first)."""
    return [Queue(name, connection=conn) for name in QUEUE_NAMES]


def enqueue(conn: Redis, settings: ServiceSettings, job_id: str, priority: str) -> None:
    """Put the job id on its priority queue with the retry policy and timeout from settings."""
    queue = Queue(priority, connection=conn)
    retry = None
    if settings.job_retries > 1:
        retry = Retry(max=settings.job_retries - 1, interval=list(settings.job_retry_backoff_s) or 0)
    queue.enqueue(
        TASK,
        job_id,
        job_id=job_id,
        job_timeout=settings.job_timeout_s,
        retry=retry,
        result_ttl=0,  # the ledger keeps results; Redis need not
        failure_ttl=settings.failed_ttl_s,
        description=f"parse {job_id}",
    )


def is_pending(conn: Redis, job_id: str) -> bool:
    """True when Redis still holds the job as queued, scheduled or running."""
    try:
        job = RQJob.fetch(job_id, connection=conn)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    if status not in _PENDING:
        return False
    if status == JobStatus.QUEUED:
        # The hash may survive while the id is gone from the list (e.g. a partial restore).
        return Queue(job.origin, connection=conn).get_job_position(job_id) is not None
    return True


def forget(conn: Redis, job_id: str) -> None:
    """Drop Redis' stale record of a job before re-enqueueing it (registries and hash)."""
    for name in QUEUE_NAMES:
        for registry in (
            StartedJobRegistry(name, connection=conn),
            FailedJobRegistry(name, connection=conn),
            ScheduledJobRegistry(name, connection=conn),
        ):
            # Started entries are "job_id:execution_id"; remove by member prefix, whatever the format.
            for member, _ in conn.zscan_iter(registry.key, match=f"{job_id}*"):
                conn.zrem(registry.key, member)
        Queue(name, connection=conn).remove(job_id)
    conn.delete(RQJob.key_for(job_id))


def position(conn: Redis, job_id: str, priority: str) -> int | None:
    """How many jobs will be taken before this one (0 = next), or None when not waiting in Redis."""
    ahead = 0
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=conn)
        if name == priority:
            pos = queue.get_job_position(job_id)
            return None if pos is None else ahead + pos
        ahead += queue.count
    return None


def stats(conn: Redis) -> dict[str, Any]:
    """Per-queue counts, oldest waiting age and workers with heartbeat age (for /api/queue and metrics)."""
    now = time.time()
    result: dict[str, Any] = {"queues": {}, "workers": []}
    for queue in queues(conn):
        oldest_age = 0.0
        first = queue.get_job_ids(0, 1)
        if first:
            try:
                job = RQJob.fetch(first[0], connection=conn)
                if job.enqueued_at is not None:
                    oldest_age = max(0.0, now - job.enqueued_at.timestamp())
            except NoSuchJobError:
                pass
        result["queues"][queue.name] = {
            "waiting": queue.count,
            "processing": StartedJobRegistry(queue.name, connection=conn).count,
            "failed": FailedJobRegistry(queue.name, connection=conn).count,
            "scheduled": ScheduledJobRegistry(queue.name, connection=conn).count,
            "oldest_waiting_age_s": round(oldest_age, 3),
        }
    for worker in Worker.all(connection=conn):
        beat = worker.last_heartbeat
        result["workers"].append(
            {
                "name": worker.name,
                "state": str(worker.get_state()),
                "queues": worker.queue_names(),
                "heartbeat_age_s": round(now - beat.timestamp(), 3) if beat else None,
                "current_job": worker.get_current_job_id(),
            }
        )
    return result
