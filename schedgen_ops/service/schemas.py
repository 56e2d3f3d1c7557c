"""Response models of the HTTP API (they are the OpenAPI schema clients and schemathesis check)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

JobStatus = Literal["queued", "processing", "completed", "failed"]


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code, e.g. not_a_pdf, rate_limited.")
    message: str
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class UploadAccepted(BaseModel):
    job_id: str = Field(description="128-bit random id (32 hex characters).")
    status: JobStatus
    status_url: str
    events_url: str
    calendar_url: str


class JobError(BaseModel):
    code: str
    message: str


class JobView(BaseModel):
    job_id: str
    status: JobStatus
    kind: Literal["lectures", "tests", "exams"] | None
    attempts: int
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: JobError | None
    queue_position: int | None = Field(description="Jobs ahead of this one (0 = next); null unless queued.")


class QueueCounts(BaseModel):
    waiting: int
    processing: int
    failed: int
    scheduled: int
    oldest_waiting_age_s: float


class WorkerView(BaseModel):
    name: str
    state: str
    queues: list[str]
    heartbeat_age_s: float | None
    current_job: str | None


class QueueView(BaseModel):
    queues: dict[str, QueueCounts]
    workers: list[WorkerView]
    ledger: dict[str, int] = Field(description="Jobs in the ledger by status.")


class Liveness(BaseModel):
    status: Literal["ok"]


class CheckResult(BaseModel):
    ok: bool
    latency_ms: float
    detail: str


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, CheckResult]
