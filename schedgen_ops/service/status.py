"""The job status answer: its JSON bytes, ETag and caching headers, and a cache of finished jobs.

Status is what clients poll, so it is built once as bytes (no second validation pass by FastAPI) and
carries a strong ETag: a poll with ``If-None-Match`` that still matches gets 304 and no body.

`TerminalCache` holds only ``completed`` and ``failed`` answers: the ledger's transitions never leave
those states (`ledger.complete`/`fail`/`requeue` all require ``processing``), so a cached one cannot go
stale. The ledger stays the system of record: the cache is per process, bounded, and an entry lives at most
``ttl_s`` and never past the job's own expiry (minus a clock-skew margin), after which the ledger answers
again (and says 404 once the job is purged). Queued and processing jobs always come from the ledger.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from starlette.responses import Response

from schedgen_ops.service import ledger
from schedgen_ops.service.expiring_lru import ExpiringLru
from schedgen_ops.service.schemas import JobError, JobView

TERMINAL = frozenset({"completed", "failed"})
# Retry-After of a queued job by its position (jobs ahead): polling faster than the queue moves learns
# nothing. Up to 1 ahead (or unknown) -> 1 s, up to 10 -> 2 s, more -> 5 s.
QUEUED_RETRY_AFTER_S = ((1, 1), (10, 2), (None, 5))
TERMINAL_MAX_AGE_S = 60  # Cache-Control max-age of a finished job (its answer no longer changes)
EXPIRY_MARGIN_S = 30.0  # a cached entry ends this long before the job's expires_at (clock skew, purge)


@dataclass(frozen=True)
class StatusAnswer:
    """One rendered status: the exact body bytes, their ETag and the caching headers to send."""

    status: str
    body: bytes
    etag: str
    headers: dict[str, str]
    # The headers of a 200 and of a 304, encoded once for ASGI (every poll re-sends the same ones).
    raw_ok: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False)
    raw_not_modified: tuple[tuple[bytes, bytes], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        raw = tuple(
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()
        )
        length = (b"content-length", str(len(self.body)).encode("latin-1"))
        object.__setattr__(self, "raw_ok", (*raw, length, (b"content-type", b"application/json")))
        object.__setattr__(self, "raw_not_modified", raw)

    def response(self, if_none_match: str | None) -> Response:
        """The answer to a poll: 304 (no body) while ``if_none_match`` matches, else 200 and the JSON."""
        return AnswerResponse(self, not_modified=self.matches(if_none_match))

    def matches(self, if_none_match: str | None) -> bool:
        """RFC 9110 weak comparison of ``If-None-Match`` (a list, ``*``, or W/ tags) with our ETag."""
        if not if_none_match:
            return False
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return any(tag == "*" or tag.removeprefix("W/") == self.etag for tag in tags)


class AnswerResponse(Response):
    """A `StatusAnswer` as a Starlette response, with the headers it encoded once (no per-poll encoding)."""

    def __init__(self, answer: StatusAnswer, *, not_modified: bool) -> None:
        # Not super().__init__: that would re-render the body and re-encode the headers of every poll.
        self.status_code = 304 if not_modified else 200
        self.body = b"" if not_modified else answer.body
        self.background = None
        self.raw_headers = list(answer.raw_not_modified if not_modified else answer.raw_ok)


def render(job: ledger.Job, position: int | None) -> StatusAnswer:
    """The JobView of ``job`` as bytes with ETag, Cache-Control and (queued) Retry-After."""
    error = None
    if job.status == "failed":
        error = JobError(code=job.error_code or "failed", message=job.error_message or "")
    body = (
        JobView(
            job_id=job.id,
            status=job.status,  # type: ignore[arg-type]
            kind=job.kind,  # type: ignore[arg-type]
            attempts=job.attempts,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            error=error,
            queue_position=position if job.status == "queued" else None,
        )
        .model_dump_json()
        .encode()
    )
    etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag}
    if job.status in TERMINAL:
        headers["Cache-Control"] = f"private, max-age={TERMINAL_MAX_AGE_S}"
    else:
        # Job ids are bearer secrets: never in a shared cache; revalidate each poll (304 when unchanged).
        headers["Cache-Control"] = "private, no-cache"
        if job.status == "queued":
            headers["Retry-After"] = str(retry_after_s(position))
    return StatusAnswer(job.status, body, etag, headers)


def retry_after_s(position: int | None) -> int:
    """Seconds a client should wait before polling a queued job ``position`` jobs from the front."""
    ahead = position or 0
    for bound, seconds in QUEUED_RETRY_AFTER_S:
        if bound is None or ahead <= bound:
            return seconds
    return QUEUED_RETRY_AFTER_S[-1][1]


class TerminalCache:
    """A bounded LRU of finished jobs' answers; ``put`` ignores every state that can still change."""

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._entries: ExpiringLru[StatusAnswer] = ExpiringLru(max_entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, job_id: str) -> StatusAnswer | None:
        return self._entries.get(job_id)

    def put(self, job: ledger.Job, answer: StatusAnswer) -> bool:
        """Keep ``answer`` if ``job`` is finished and not about to expire; True when kept."""
        if job.status not in TERMINAL or answer.status != job.status:
            return False
        lifetime = self.ttl_s
        if job.expires_at is not None:
            left = (job.expires_at - dt.datetime.now(dt.UTC)).total_seconds() - EXPIRY_MARGIN_S
            lifetime = min(lifetime, left)
        return self._entries.put(job.id, answer, lifetime)
