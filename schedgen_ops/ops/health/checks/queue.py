"""queue (RQ on the queue Redis): depth per queue, oldest waiting job, live workers and heartbeat age.

Read through RQ's own structures (queues, job hashes, the worker registry), the same ones the workers
write, so the numbers match what RQ will do next.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job

from schedgen_ops.ops.health.checks.redis_ import client, failure_hint
from schedgen_ops.ops.health.endpoints import redact
from schedgen_ops.ops.health.model import CheckResult, Level, Status
from schedgen_ops.ops.health.runner import ProbeContext

C = "queue"


def _age_s(moment: datetime | None, now: datetime) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (now - moment).total_seconds())


def probe(ctx: ProbeContext) -> list[CheckResult]:
    url = ctx.endpoints.redis_url
    th = ctx.thresholds
    if not url:
        how = ctx.endpoints.notes.get("redis_url", "--redis-url or SCHEDGEN_REDIS_URL")
        return [CheckResult(C, "backlog", Status.UNKNOWN, "no Redis URL", hint=f"pass {how}")]
    conn = client(url, ctx)
    try:
        return _measure(conn, ctx)
    except redis.RedisError as exc:
        return [
            CheckResult(
                C,
                "backlog",
                Status.CRITICAL,
                f"{redact(url)}: {type(exc).__name__}: {exc}"[:200],
                threshold=f"warn ≥ {th.queue_depth_warn}",
                hint=failure_hint(exc),
            )
        ]
    finally:
        conn.close()


def _measure(conn: redis.Redis, ctx: ProbeContext) -> list[CheckResult]:
    th = ctx.thresholds
    now = datetime.now(UTC)
    results: list[CheckResult] = []
    depth_level = Level(th.queue_depth_warn, th.queue_depth_critical)
    oldest: tuple[float, str] | None = None
    depths: dict[str, int] = {}
    for name in ctx.endpoints.queues:
        queue = Queue(name, connection=conn)
        depths[name] = queue.count
        for job_id in queue.get_job_ids(0, 1):
            try:
                job = Job.fetch(job_id, connection=conn)
            except NoSuchJobError:
                continue
            age = _age_s(job.enqueued_at, now)
            if age is not None and (oldest is None or age > oldest[0]):
                oldest = (age, name)
    total = sum(depths.values())
    status = depth_level.judge(total)
    per_queue = ", ".join(f"{name} {count}" for name, count in depths.items())
    results.append(
        CheckResult(
            C,
            "backlog",
            status,
            f"{total} waiting ({per_queue})",
            value=total,
            unit="jobs",
            threshold=depth_level.describe() + " (all queues)",
            hint=None
            if status is Status.OK
            else "jobs are piling up: check queue.workers below, then `schedgen scale pdf-worker=N`",
        )
    )
    age_level = Level(th.queue_oldest_job_warn_s, th.queue_oldest_job_critical_s)
    age_s = oldest[0] if oldest else 0.0
    status = age_level.judge(age_s)
    results.append(
        CheckResult(
            C,
            "oldest_waiting",
            status,
            f"{age_s:.0f} s (queue '{oldest[1]}')" if oldest else "no job waiting",
            value=round(age_s, 1),
            unit="s",
            threshold=age_level.describe("{:g} s"),
            hint=None
            if status is Status.OK
            else "jobs wait too long: workers are down, stuck or too few; see queue.workers, then "
            "`schedgen scale pdf-worker=N`",
        )
    )
    results.extend(_workers(conn, ctx, now, total))
    return results


def _workers(conn: redis.Redis, ctx: ProbeContext, now: datetime, waiting: int) -> list[CheckResult]:
    th = ctx.thresholds
    wanted = set(ctx.endpoints.queues)
    workers = [w for w in Worker.all(connection=conn) if wanted & set(w.queue_names())]
    count = len(workers)
    ok = count >= th.workers_min
    results = [
        CheckResult(
            C,
            "workers",
            Status.OK if ok else Status.CRITICAL,
            f"{count} live ({waiting} job(s) waiting)",
            value=count,
            unit="workers",
            threshold=f"critical < {th.workers_min}",
            hint=None
            if ok
            else "no worker is consuming the queues: start them (`schedgen scale pdf-worker=N` / "
            "`schedgen status`) and check `schedgen logs pdf-worker`",
        )
    ]
    ages = [a for a in (_age_s(w.last_heartbeat, now) for w in workers) if a is not None]
    if ages:
        level = Level(th.worker_heartbeat_warn_s, th.worker_heartbeat_critical_s)
        worst = max(ages)
        status = level.judge(worst)
        results.append(
            CheckResult(
                C,
                "heartbeat",
                status,
                f"oldest {worst:.0f} s ago ({count} worker(s))",
                value=round(worst, 1),
                unit="s",
                threshold=level.describe("{:g} s"),
                hint=None
                if status is Status.OK
                else "a worker stopped heartbeating (hung or frozen host): restart it; RQ requeues its job",
            )
        )
    return results
