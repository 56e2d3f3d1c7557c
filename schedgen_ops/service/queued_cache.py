"""A cache of queued jobs' ledger rows, valid while Redis shows the same enqueue still waiting.

A queued job is what a waiting client polls most, and reading its row from Postgres on every poll was
most of that poll's cost (docs/PERFORMANCE.md, issue 17). The row of a queued job changes only after a
worker has taken the job off its Redis queue: a claim (`ledger.lock_and_claim`) and an exhausted job's
final failure (`tasks._unclaimable`) run inside the RQ job, after RQ popped it; requeues and new
deliveries enqueue it again, which gives it a new ``enqueued_at`` in its RQ hash.
(`tests/test_architecture.py::test_queued_jobs_change_only_inside_the_rq_job` pins where those calls are.)

So a poll may answer from the cached row when one Redis round trip shows (a) the job still in its queue
(its position, which the answer needs anyway) and (b) the same ``enqueued_at`` (the marker) as read
*before* the row was: then no worker has taken this enqueue of the job since the row was read. Anything
else (taken, re-enqueued, hash gone, Redis down) drops the entry and the ledger answers. The ledger stays
the system of record; an entry also lives at most ``ttl_s`` from its ledger read (hits do not extend
it), which bounds what a change made outside the service (an operator's SQL, a restore) could leave
stale. The marker is (``enqueued_at`` while RQ's ``status`` is ``queued``): RQ marks the job ``started``
before the claim, so even a job id on its queue twice (enqueued again while still waiting), whose other
copy stays in the queue after a worker took one, stops matching once a worker has it.
"""

from __future__ import annotations

from dataclasses import dataclass

from schedgen_ops.service import ledger
from schedgen_ops.service.expiring_lru import ExpiringLru
from schedgen_ops.service.status import StatusAnswer, render


@dataclass
class QueuedEntry:
    job: ledger.Job  # the row, read while ``marker`` was the job's enqueue
    marker: bytes  # RQ's enqueued_at of that enqueue (`queue.marker_from`)
    position: int  # the position ``answer`` was rendered at
    answer: StatusAnswer


class QueuedCache:
    """A bounded LRU of queued rows; every lookup is validated by the caller against Redis (`answer`)."""

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._entries: ExpiringLru[QueuedEntry] = ExpiringLru(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, job_id: str) -> QueuedEntry | None:
        return self._entries.get(job_id)

    def answer(self, entry: QueuedEntry, position: int | None, marker: bytes | None) -> StatusAnswer | None:
        """The answer at ``position`` when Redis (``position``, ``marker``) still shows the entry's enqueue
        waiting, rendered again only when the position moved; None (and the entry dropped) otherwise."""
        if position is None or marker is None or marker != entry.marker:
            self.drop(entry.job.id)
            return None
        if position != entry.position:
            entry.answer, entry.position = render(entry.job, position), position
        return entry.answer

    def put(self, job: ledger.Job, marker: bytes | None, position: int | None, answer: StatusAnswer) -> bool:
        """Keep a queued ``job`` read under ``marker`` and still waiting at ``position``; True when kept."""
        if job.status != "queued" or marker is None or position is None:
            return False
        return self._entries.put(job.id, QueuedEntry(job, marker, position, answer), self.ttl_s)

    def drop(self, job_id: str) -> None:
        self._entries.drop(job_id)
