"""The RQ transport: three priority queues on the queue Redis, carrying only job ids.

The RQ job id is the ledger's job id, so the reconciler can ask Redis whether a job the ledger calls
``queued`` is still on its way to a worker (`queue_audit`) and put lost ones back (`enqueue_many`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from redis import Redis
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.queue import EnqueueData
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from schedgen_ops.service.settings import ServiceSettings

QUEUE_NAMES = ("high", "default", "low")
TASK = "schedgen_ops.service.tasks.process_job"
#: Seconds RQ keeps a finished job's hash (the ledger keeps the result). Not 0: RQ deletes a job kept for 0 s
#: by looking up its registries and executions again, 7 more round trips per job than letting the hash
#: expire (docs/PERFORMANCE.md, issue 17). `queue_audit` treats a ``finished`` hash like a missing one.
RESULT_TTL_S = 60


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


def _job_data(settings: ServiceSettings, job_id: str) -> EnqueueData:
    """What RQ stores for one job: the id is the ledger's, the retry policy and timeouts from settings."""
    retry = None
    if settings.job_retries > 1:
        retry = Retry(max=settings.job_retries - 1, interval=list(settings.job_retry_backoff_s) or 0)
    return Queue.prepare_data(
        TASK,
        (job_id,),
        job_id=job_id,
        timeout=settings.job_timeout_s,
        retry=retry,
        result_ttl=RESULT_TTL_S,
        failure_ttl=settings.failed_ttl_s,
        description=f"parse {job_id}",
    )


def enqueue(conn: Redis, settings: ServiceSettings, job_id: str, priority: str) -> None:
    """Put the job id on its priority queue with the retry policy and timeout from settings."""
    enqueue_many(conn, settings, [(job_id, priority)])


def enqueue_many(conn: Redis, settings: ServiceSettings, jobs: Sequence[tuple[str, str]]) -> None:
    """Enqueue (job id, priority) pairs, each priority's jobs in one pipeline (one round trip)."""
    by_priority: dict[str, list[str]] = {}
    for job_id, priority in jobs:
        by_priority.setdefault(priority, []).append(job_id)
    for priority, ids in by_priority.items():
        queue = Queue(priority, connection=conn)
        with conn.pipeline() as pipe:
            queue.enqueue_many([_job_data(settings, job_id) for job_id in ids], pipeline=pipe)
            pipe.execute()


def position(conn: Redis, job_id: str, priority: str) -> int | None:
    """How many jobs will be taken before this one (0 = next), or None when not waiting in Redis.

    One round trip: LLEN of the queues ahead and LPOS in the job's own queue, pipelined (RQ's
    ``get_job_position`` costs an INFO per new Queue object plus one call per queue; Redis >= 6.0.6).
    """
    if priority not in QUEUE_NAMES:
        return None
    with conn.pipeline(transaction=False) as pipe:
        queue_position_commands(pipe, job_id, priority)
        return position_from(pipe.execute())


def queue_position_commands(pipe: Any, job_id: str, priority: str) -> None:
    """Queue `position`'s commands on a pipeline (sync or `redis.asyncio`: the same calls queue them)."""
    names = QUEUE_NAMES[: QUEUE_NAMES.index(priority) + 1]
    for name in names[:-1]:
        pipe.llen(Queue.redis_queue_namespace_prefix + name)
    pipe.lpos(Queue.redis_queue_namespace_prefix + priority, job_id)


def enqueue_marker_command(pipe: Any, job_id: str) -> None:
    """Queue the read of the job's ``enqueued_at`` and ``status`` in its RQ hash (`marker_from` reads the
    reply): RQ sets ``enqueued_at`` anew on every enqueue (upload, retry, the reconciler's recovery) and
    ``status`` to ``started`` before it runs the job, so the same marker means the same enqueue, not yet
    taken (`queued_cache`)."""
    pipe.hmget(RQJob.redis_job_namespace_prefix + job_id, "enqueued_at", "status")


def marker_from(reply: Any) -> bytes | None:
    """The enqueue marker from `enqueue_marker_command`'s reply: ``enqueued_at`` while RQ still has the
    job ``queued``, else None (no hash, or a worker has started it: the ledger must answer)."""
    enqueued_at, status = (value.encode() if isinstance(value, str) else value for value in reply)
    return enqueued_at if status == b"queued" else None


def position_from(replies: Sequence[Any]) -> int | None:
    """The position from `queue_position_commands`' replies: the lengths ahead, then LPOS."""
    *lengths, pos = replies
    return None if pos is None else sum(int(n) for n in lengths) + int(pos)


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
