"""Ask the queue Redis, in bulk, which jobs it will still deliver; clear what it holds of lost ones.

The reconciler compares every queued job of the ledger with Redis. Asking per job (fetch the RQ job,
LPOS its id in the list) costs round trips per job, and LPOS walks the whole list each time, so a pass
over a large backlog took minutes. Here a pass costs a fixed number of round trips per page of jobs:

- `waiting_ids` reads the three queue lists once, in LRANGE pages taken from the tail backwards
  (workers pop at the head and the api pushes at the tail, so a pop shifts no page still to read and a
  push can only repeat an id, never hide one);
- `job_statuses` reads the RQ hash status of a whole page of jobs in one server-side script that
  answers one character per job (a pipeline of HGETs costs the client a command and a reply per job);
- `forget_many` clears stale registry entries, list entries and hashes of lost jobs in one pipeline.

A job is pending (RQ will deliver it) when its hash says scheduled, deferred or started, or says queued
while its id is on a list. Anything else (no hash, finished or failed in RQ, queued but on no list after
a partial restore) is lost: the reconciler enqueues it again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis import Redis
from rq import Queue
from rq.job import Job as RQJob
from rq.registry import DeferredJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from schedgen_ops.service.queue import QUEUE_NAMES

#: Queue-list ids read per LRANGE: bounds each reply and the time Redis spends on one command.
LIST_PAGE = 10_000
#: One character per RQ status in `job_statuses`' answer ('-': no hash, '?': any other status).
_CODES = {"q": "queued", "s": "scheduled", "d": "deferred", "t": "started", "f": "finished", "x": "failed"}
_IN_FLIGHT = {"scheduled", "deferred", "started"}
_STATUS_LUA = """
local codes = {queued='q', scheduled='s', deferred='d', started='t', finished='f', failed='x'}
local out = {}
for i = 1, #KEYS do
  local status = redis.call('HGET', KEYS[i], 'status')
  out[i] = status and (codes[status] or '?') or '-'
end
return table.concat(out)
"""


@dataclass(frozen=True)
class Lost:
    """A job Redis will not deliver: its queue (the ledger's priority), RQ hash status, list it is on."""

    id: str
    queue: str
    status: str | None
    listed: str | None


def waiting_ids(conn: Redis, *, page: int | None = None) -> dict[str, str]:
    """Every id on the three queue lists -> its queue name."""
    size = page or LIST_PAGE
    found: dict[str, str] = {}
    for name in QUEUE_NAMES:
        key = Queue(name, connection=conn).key
        end = -1
        for _ in range(int(conn.llen(key)) // size + 2):  # bounded even while pushes lengthen the list
            chunk = conn.lrange(key, end - size + 1, end)
            for raw in chunk:
                found.setdefault(_text(raw), name)
            if len(chunk) < size:
                break
            end -= size
    return found


def job_statuses(conn: Redis, job_ids: Sequence[str]) -> list[str | None]:
    """The RQ hash status of each id (None: no hash; "other" for statuses we never act on)."""
    if not job_ids:
        return []
    answer = _text(conn.register_script(_STATUS_LUA)(keys=[RQJob.key_for(job_id) for job_id in job_ids]))
    if len(answer) != len(job_ids):
        raise RuntimeError(f"job status script answered {len(answer)} codes for {len(job_ids)} jobs")
    return [None if code == "-" else _CODES.get(code, "other") for code in answer]


def is_pending(status: str | None, listed: bool) -> bool:
    """True when RQ will still deliver the job (see the module docstring)."""
    return status in _IN_FLIGHT or (status == "queued" and listed)


def forget_many(conn: Redis, jobs: Iterable[Lost]) -> None:
    """Drop Redis' stale record of jobs before they are enqueued again, in one pipeline.

    Started registries (one entry per running job, so small) are read once per call; the other
    registries of the job's queue hold plain ids, removed with ZREM. A list entry is removed where there
    is one: the id was on a list, or its hash says queued (it may have been pushed since the lists were
    read).
    """
    started: dict[str, list[tuple[str, Any]]] = {}
    for name in QUEUE_NAMES:
        key = StartedJobRegistry(name, connection=conn).key
        for member in conn.zrange(key, 0, -1):
            started.setdefault(_text(member).split(":", 1)[0], []).append((key, member))
    with conn.pipeline(transaction=False) as pipe:
        for job in jobs:
            for key, member in started.get(job.id, ()):
                pipe.zrem(key, member)
            if job.status is not None:  # a hash exists, so may registry entries
                for registry in (FailedJobRegistry, ScheduledJobRegistry, DeferredJobRegistry):
                    pipe.zrem(registry(job.queue, connection=conn).key, job.id)
                pipe.delete(RQJob.key_for(job.id))
            listed = job.listed or (job.queue if job.status == "queued" else None)
            if listed is not None:
                pipe.lrem(Queue(listed, connection=conn).key, 0, job.id)
        pipe.execute()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
