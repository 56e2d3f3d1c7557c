"""`LeanWorker`: RQ's `SimpleWorker` without the Redis round trips that repeat what was just written.

Per job RQ 3 sends four worker heartbeats (three of them as HSET + 2 EXPIRE, one round trip each) within
a few milliseconds, writes the state ``idle`` twice, and stamps the job hash once more after the job
returned (time for success/failure callbacks, which these jobs do not have): 12 of the 27 Redis round
trips a job cost the worker (docs/PERFORMANCE.md, issue 17; 7 more went with `queue.RESULT_TTL_S`). Here:

- an unpipelined heartbeat is one pipelined round trip, and is skipped when a heartbeat with at least the
  same TTL went out less than `HEARTBEAT_MIN_INTERVAL_S` ago (the worker key's TTL is minutes, so it
  cannot run out in between); heartbeats inside RQ's own pipelines are always written;
- after a job, the ``idle`` state and the heartbeat go out together with the suspension check that RQ's
  loop runs next (one pipeline) instead of in two round trips of their own before it;
- an unpipelined state write is skipped when it repeats the state this worker last wrote;
- the end-of-execution job heartbeat is skipped for a job without callbacks.

Everything else RQ relies on (worker registration and TTL, the started registry and executions, the
job timeout, retries, failure handling) is RQ's own code, unchanged.
"""

from __future__ import annotations

import time

from redis.client import Pipeline
from rq import SimpleWorker
from rq.job import Job
from rq.queue import Queue
from rq.utils import now
from rq.worker import WorkerStatus

#: An unpipelined worker heartbeat is skipped when one with at least its TTL went out less than this ago.
HEARTBEAT_MIN_INTERVAL_S = 5.0


class LeanWorker(SimpleWorker):
    """A `SimpleWorker` that skips repeated heartbeats and state writes (see the module docstring)."""

    _beat_at = float("-inf")
    _beat_ttl = 0
    #: A state already set here but not yet written to Redis: the next heartbeat writes it.
    _pending_state: str | None = None
    #: The job just ended: RQ's loop heartbeats next, then checks for suspension in a pipeline that
    #: heartbeats again; the first of the two is left to the second.
    _job_ended = False

    def execute_job(self, job: Job, queue: Queue) -> None:
        """`SimpleWorker.execute_job`, with the ``idle`` state written by the next heartbeat."""
        execution = self.prepare_execution(job)
        self.perform_job(job, queue, execution)
        self._state = self._pending_state = WorkerStatus.IDLE
        self._job_ended = True

    def heartbeat(self, timeout: int | None = None, pipeline: Pipeline | None = None) -> None:
        ttl = timeout or self.worker_ttl + 60  # what RQ's heartbeat sets the worker key's TTL to
        if pipeline is None and timeout is None and self._job_ended:
            self._job_ended = False  # RQ's loop: the suspension check that follows heartbeats
            return
        self._job_ended = False
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            self._write_pending_state(pipeline)
        elif (
            self._pending_state is None
            and ttl <= self._beat_ttl
            and time.monotonic() - self._beat_at < HEARTBEAT_MIN_INTERVAL_S
        ):
            return
        else:
            with self.connection.pipeline(transaction=False) as pipe:
                super().heartbeat(timeout, pipeline=pipe)
                self._write_pending_state(pipe)
                pipe.execute()
        self._beat_at, self._beat_ttl = time.monotonic(), ttl

    def _write_pending_state(self, pipeline: Pipeline) -> None:
        if self._pending_state is not None:
            pipeline.hset(self.key, "state", self._pending_state)
            self._pending_state = None

    def set_state(self, state: str, pipeline: Pipeline | None = None) -> None:
        if pipeline is None and state == self._state:
            return
        self._pending_state = None  # superseded
        super().set_state(state, pipeline=pipeline)

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        if job._success_callback_name or job._failure_callback_name:
            super().handle_execution_ended(job, queue, heartbeat_ttl)
        else:
            job.ended_at = now()
