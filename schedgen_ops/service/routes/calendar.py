"""GET /api/jobs/{job_id}/calendar.ics: a completed job's calendar, by the rules of
`schedgen parse --format ics` (semester dates, group filters, exam length)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Query, Response

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.api_errors import ERRORS, ApiError
from schedgen_ops.service.api_state import State
from schedgen_ops.service.job_reads import completed_timetable

router = APIRouter()


@router.get(
    "/api/jobs/{job_id}/calendar.ics",
    responses={**ERRORS, 200: {"content": {"text/calendar": {"schema": {"type": "string"}}}}},
    response_class=Response,
    summary="Calendar (same rules as `schedgen parse --format ics`)",
)
def job_calendar(
    job_id: str,
    state: State,
    date_from: dt.date | None = Query(None, alias="from", description="First day (lectures repeat from)."),
    date_until: dt.date | None = Query(None, alias="until", description="Last day, inclusive."),
    semester: str | None = Query(None, pattern="^(?i:S1|S2|Y)$", description="S1, S2 or Y."),
    group: list[str] = Query([], description='Keep only these groups of a module: "COS 214=P01,G01".'),
    exam_duration_min: int = Query(180, ge=1, le=600, description="Exam length (the PDF has no end)."),
) -> Response:
    from schedgen_ops.parsing.ics import parse_group_filters, to_ics
    from schedgen_ops.parsing.semesters import resolve_semester

    timetable = completed_timetable(state.ctx, job_id)
    try:
        if semester and (date_from is None or date_until is None):
            dates = resolve_semester(semester)
            date_from = date_from or dates.start
            date_until = date_until or dates.end
        body = to_ics(
            [timetable],
            date_from=date_from,
            date_until=date_until,
            exam_duration_min=exam_duration_min,
            group_filter=parse_group_filters(group) if group else None,
            semester=semester.upper() if semester and semester.upper() in ("S1", "S2") else None,
        )
    except SchedgenError as exc:
        raise ApiError(422, exc.code, exc.one_line()) from None
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{job_id}.ics"'},
    )
