"""A job's status (ETag, Retry-After while queued, 304 on a matching If-None-Match) and its parsed events;
how a job is read is `job_reads`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from schedgen_ops.parsing.export import TimetableDocument
from schedgen_ops.service.api_errors import ERRORS
from schedgen_ops.service.api_state import ApiState, State
from schedgen_ops.service.job_reads import completed_timetable, status_answer
from schedgen_ops.service.schemas import JobView

router = APIRouter()


@router.get(
    "/api/jobs/{job_id}",
    response_model=JobView,
    responses={
        **ERRORS,
        304: {"description": "Not modified: the If-None-Match ETag still matches (no body)."},
    },
    summary="Job status (ETag; Retry-After while queued)",
)
async def job_status(job_id: str, request: Request) -> Response:
    # The envelope answers these polls itself, before routing (`middleware.Envelope`), through the same
    # `status_answer`: this route declares the endpoint (OpenAPI) and answers when the envelope does not.
    state: ApiState = request.app.state.service
    answer = await status_answer(state, job_id)
    return answer.response(request.headers.get("if-none-match"))


@router.get(
    "/api/jobs/{job_id}/events",
    response_model=TimetableDocument,
    responses=ERRORS,
    summary="Parsed events (same JSON as `schedgen parse --format json`)",
)
def job_events(job_id: str, state: State) -> dict[str, Any]:
    from schedgen_ops.parsing.export import to_json

    return to_json([completed_timetable(state.ctx, job_id)])
