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

from schedgen_ops.ops.health.checks.redis_ import client, missing_url, unreachable
from schedgen_ops.ops.health.model import CheckResult, Level, judged, passed
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
        return missing_url(ctx, C, "backlog")
    conn = client(url, ctx)
    try:
        return _measure(conn, ctx)
    except redis.RedisError as exc:
        return [unreachable(C, "backlog", url, exc, f"warn ≥ {th.queue_depth_warn}")]
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
    per_queue = ", ".join(f"{name} {count}" for name, count in depths.items())
    results.append(
        judged(
            C,
            "backlog",
            depth_level,
            total,
            f"{total} waiting ({per_queue})",
            note=" (all queues)",
            value=total,
            unit="jobs",
            hint="jobs are piling up: check queue.workers below, then `schedgen scale pdf-worker=N`",
        )
    )
    age_level = Level(th.queue_oldest_job_warn_s, th.queue_oldest_job_critical_s)
    age_s = oldest[0] if oldest else 0.0
    results.append(
        judged(
            C,
            "oldest_waiting",
            age_level,
            age_s,
            f"{age_s:.0f} s (queue '{oldest[1]}')" if oldest else "no job waiting",
            value=round(age_s, 1),
            unit="s",
            hint="jobs wait too long: workers are down, stuck or too few; see queue.workers, then "
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
        passed(
            C,
            "workers",
            ok,
            f"{count} live ({waiting} job(s) waiting)",
            value=count,
            unit="workers",
            threshold=f"critical < {th.workers_min}",
            hint="no worker is consuming the queues: start them (`schedgen scale pdf-worker=N` / "
            "`schedgen status`) and check `schedgen logs pdf-worker`",
        )
    ]
    ages = [a for a in (_age_s(w.last_heartbeat, now) for w in workers) if a is not None]
    if ages:
        level = Level(th.worker_heartbeat_warn_s, th.worker_heartbeat_critical_s)
        worst = max(ages)
        results.append(
            judged(
                C,
                "heartbeat",
                level,
                worst,
                f"oldest {worst:.0f} s ago ({count} worker(s))",
                value=round(worst, 1),
                unit="s",
                hint="a worker stopped heartbeating (hung or frozen host): restart it; RQ requeues its job",
            )
        )
    return results
