"""How the api reads a job: its ledger row (404 for an unknown or malformed id), its status answer (the
route and the envelope's early answer share it) and a completed job's timetable (events, calendar)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from schedgen_ops.service import ledger, queue
from schedgen_ops.service import status as status_view
from schedgen_ops.service.api_errors import ApiError
from schedgen_ops.service.api_state import ApiState
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.queued_cache import QueuedEntry


async def status_answer(
    state: ApiState, job_id: str, prefetch: StatusPrefetch | None = None
) -> status_view.StatusAnswer:
    """A job's status answer. A finished job's comes from this process's cache (no round trip); a queued
    one's from the queued-row cache while Redis shows its enqueue still waiting (`queued_cache`; its Redis
    reads come with ``prefetch`` when the envelope sent them); any other from the ledger and, while
    queued, the queue position. The reads run on the event loop through the process's `StatusReads`, or
    in one thread hop (and without the queued-row cache) when the connection budget leaves it no pool."""
    cached = state.status_cache.get(job_id)
    if cached is not None:
        return cached
    if state.reads.pool is None:
        job, answer = await run_in_threadpool(_status, state.ctx, job_id)
    else:
        fetched = prefetch.replies if prefetch is not None else None
        if fetched is not None and prefetch is not None and prefetch.entry is not None:
            queued = prefetch.answer(fetched)
        else:
            queued = await _queued_from_cache(state, job_id)
        if queued is not None:
            return queued
        # The prefetched marker was read before the row is: it may stand for `_status_on_loop`'s own read.
        before = prefetch.marker() if prefetch is not None and fetched is not None else _UNREAD
        job, answer = await _status_on_loop(state, job_id, before)
    state.status_cache.put(job, answer)
    return answer


_UNREAD = b"\0unread"  # `_status_on_loop`: the enqueue marker is still to be read


@dataclass
class StatusPrefetch:
    """The Redis reads a status poll needs, sent by the envelope in the round trip that spends the poll's
    rate limit (`RateLimits.hit_with`): for a cached queued row, its position and enqueue marker, which
    validate it (`queued_cache`), so such a poll costs one Redis round trip in all; for any other job, the
    marker alone, read before the ledger row as `_status_on_loop` needs it."""

    state: ApiState
    job_id: str
    entry: QueuedEntry | None
    replies: list[Any] | None = None  # of `commands`, once sent (None: Redis did not count the hit)

    def commands(self, pipe: Any) -> None:
        if self.entry is not None:
            queue.queue_position_commands(pipe, self.job_id, self.entry.job.priority)
        queue.enqueue_marker_command(pipe, self.job_id)

    def marker(self) -> bytes | None:
        """The enqueue marker read (None: none, or the read failed)."""
        if not self.replies or isinstance(self.replies[-1], Exception):
            return None
        return queue.marker_from(self.replies[-1])

    def answer(self, replies: list[Any]) -> status_view.StatusAnswer | None:
        """The cached queued row's answer when ``replies`` show the same enqueue waiting, else None (the
        entry is dropped; the ledger answers)."""
        assert self.entry is not None
        if any(isinstance(reply, Exception) for reply in replies):
            self.state.queued_cache.drop(self.job_id)
            return None
        *position_replies, marker = replies
        position = queue.position_from(position_replies)
        return self.state.queued_cache.answer(self.entry, position, queue.marker_from(marker))


def status_prefetch(state: ApiState, job_id: str) -> StatusPrefetch | None:
    """The prefetch for a poll of ``job_id``; None when no Redis read is needed (a finished answer is
    cached, the id is malformed) or the reads are not on the loop (no status pool)."""
    if state.reads.pool is None or not ledger.JOB_ID_RE.match(job_id):
        return None
    if state.status_cache.get(job_id) is not None:
        return None
    return StatusPrefetch(state, job_id, state.queued_cache.get(job_id))


async def _queued_from_cache(state: ApiState, job_id: str) -> status_view.StatusAnswer | None:
    """The cached queued row's answer, when one Redis round trip shows it still current."""
    entry = state.queued_cache.get(job_id)
    if entry is None:
        return None
    try:
        position, marker = await state.reads.waiting(job_id, entry.job.priority)
    except Exception:  # Redis down: the ledger answers
        position, marker = None, None
    return state.queued_cache.answer(entry, position, marker)


async def _status_on_loop(
    state: ApiState, job_id: str, before: bytes | None = _UNREAD
) -> tuple[ledger.Job, status_view.StatusAnswer]:
    """`_status` without the thread hop; a queued row is kept in the queued-row cache when the enqueue
    marker read before the row (``before``, or read here) is the one still waiting after it."""
    if not ledger.JOB_ID_RE.match(job_id):
        raise ApiError(404, "job_not_found", "no such job")
    reads = state.reads
    if before == _UNREAD:
        try:
            before = await reads.marker(job_id)
        except Exception:  # Redis down: nothing is cached, the ledger answers
            before = None
    job = await reads.get_job(job_id)
    if job is None:
        raise ApiError(404, "job_not_found", "no such job")
    if job.status != "queued":
        return job, status_view.render(job, None)
    try:
        position, after = await reads.waiting(job.id, job.priority)
    except Exception:  # Redis down: the ledger still answers
        position, after = None, None
    answer = status_view.render(job, position)
    if after == before:
        state.queued_cache.put(job, before, position, answer)
    return job, answer


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
