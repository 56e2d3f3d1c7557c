"""How the api reads a job: its ledger row (404 for an unknown or malformed id), its status answer (the
route and the envelope's early answer share it) and a completed job's timetable (events, calendar)."""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool

from schedgen_ops.service import ledger, queue
from schedgen_ops.service import status as status_view
from schedgen_ops.service.api_errors import ApiError
from schedgen_ops.service.api_state import ApiState
from schedgen_ops.service.context import ServiceContext


async def status_answer(state: ApiState, job_id: str) -> status_view.StatusAnswer:
    """A job's status answer: a finished job's from this process's cache (no thread hop, no round trip),
    any other from the ledger and, while queued, the queue position, in one thread hop."""
    cached = state.status_cache.get(job_id)
    if cached is not None:
        return cached
    job, answer = await run_in_threadpool(_status, state.ctx, job_id)
    state.status_cache.put(job, answer)
    return answer


def find_job(ctx: ServiceContext, job_id: str) -> ledger.Job:
    """The job's ledger row, or 404 (also for an id that is not one)."""
    if not ledger.JOB_ID_RE.match(job_id):
        raise ApiError(404, "job_not_found", "no such job")
    with ctx.pool.connection() as conn:
        job = ledger.get_job(conn, job_id)
    if job is None:
        raise ApiError(404, "job_not_found", "no such job")
    return job


def completed_timetable(ctx: ServiceContext, job_id: str) -> Any:
    """The parsed `Timetable` of a completed job; 409 while it is not, 404 once its result expired."""
    from schedgen_ops.parsing import Timetable

    job = find_job(ctx, job_id)
    if job.status != "completed":
        raise ApiError(409, "job_not_completed", f"the job is {job.status}; poll its status until completed")
    with ctx.pool.connection() as conn:
        stored = ledger.result(conn, job_id)
    if stored is None:
        raise ApiError(404, "job_not_found", "the job's result has expired")
    return Timetable.model_validate(stored[1])


def _status(ctx: ServiceContext, job_id: str) -> tuple[ledger.Job, status_view.StatusAnswer]:
    """The job from the ledger and, when queued, its queue position: the status answer to send."""
    job = find_job(ctx, job_id)  # the pool checks the connection it lends (db.make_pool)
    position = None
    if job.status == "queued":
        try:
            position = queue.position(ctx.redis, job.id, job.priority)
        except Exception:  # Redis down: the ledger still answers
            position = None
    return job, status_view.render(job, position)
