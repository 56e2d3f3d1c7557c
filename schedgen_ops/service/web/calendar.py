"""The page's calendar: the student's choices -> one merged .ics, and the preview of what it will hold.

Both follow `schedgen parse --format ics` (cli/parse.py) exactly: the same semester resolution (explicit
dates win, the semester fills the rest and, for S1/S2, drops modules offered in the other one), the same
``--group`` filters and `parsing.ics.to_ics`, so the page's download equals the CLI's output for the same
files and choices, and UIDs stay stable across re-imports.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schedgen_ops.parsing.ics import _lecture_slots, _norm_module, parse_group_filters, to_ics
from schedgen_ops.parsing.model import ExamSitting, LectureEvent, TestSitting, Timetable
from schedgen_ops.parsing.semesters import DEFAULT_SEMESTERS, resolve_semester

MAX_FILES = 10  # one student's semester is 3 files; the subscriptions table allows 10 jobs
#: What `parse_group_filters` accepts: a non-blank module, "=", at least one non-blank group name.
GROUP_SPEC = r"^[^=]*[^=\s][^=]*=[^=]*[^=,\s][^=]*$"
JobId = Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]
GroupSpec = Annotated[str, Field(pattern=GROUP_SPEC, max_length=200)]


class Choices(BaseModel):
    """What the student chose on the page (stored with a subscription)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    semester: Literal["S1", "S2", "Y"] | None = None
    date_from: dt.date | None = Field(None, alias="from")
    date_until: dt.date | None = Field(None, alias="until")
    groups: list[GroupSpec] = Field(
        default_factory=list, max_length=200, description='As --group: "COS 214=P01,G01" per module.'
    )
    exam_duration_min: int = Field(180, ge=1, le=600, description="Assumed exam length (an estimate).")

    def date_range(self) -> tuple[dt.date | None, dt.date | None]:
        """(from, until) as `schedgen parse` resolves them: explicit dates win over the semester's."""
        start, until = self.date_from, self.date_until
        if self.semester is not None:
            dates = resolve_semester(self.semester)
            start, until = start or dates.start, until or dates.end
        return start, until

    def ics_semester(self) -> str | None:
        return self.semester if self.semester in ("S1", "S2") else None


class CalendarRequest(Choices):
    """Body of the preview and subscription calls: the page's completed jobs, in upload order."""

    jobs: list[JobId] = Field(
        min_length=1,
        max_length=MAX_FILES,
        json_schema_extra={"uniqueItems": True},
        description="Completed job ids, each once, in upload order.",
    )


class SubscriptionCreated(BaseModel):
    """A new subscription: the capability URL (https and webcal) and the page's download link."""

    url: str = Field(description="http(s) URL of the calendar; the path holds the unguessable token.")
    webcal_url: str = Field(description="The same URL with the webcal:// scheme (calendar apps).")
    download_url: str = Field(description="Path that serves the same calendar as an attachment.")
    expires_at: dt.datetime = Field(description="When the last of its results expires (then 410).")


def build_calendar(
    timetables: list[Timetable], choices: Choices, dtstamp: dt.datetime | None = None
) -> bytes:
    """The merged .ics (raises SchedgenError with the CLI's codes: date_range_required, ...)."""
    start, until = choices.date_range()
    return to_ics(
        timetables,
        date_from=start,
        date_until=until,
        exam_duration_min=choices.exam_duration_min,
        group_filter=parse_group_filters(choices.groups) if choices.groups else None,
        semester=choices.ics_semester(),
        dtstamp=dtstamp,
    )


def _hm(value: dt.time) -> str:
    return value.strftime("%H:%M")


def preview(timetables: list[Timetable], choices: Choices) -> dict[str, Any]:
    """What the calendar will hold, for the page to draw (a week of lectures, a dated list)."""
    from schedgen_ops.errors import SchedgenError

    groups = parse_group_filters(choices.groups) if choices.groups else {}
    start, until = choices.date_range()
    parsed = {"lectures": 0, "tests": 0, "exams": 0}
    modules: dict[str, dict[str, set[str]]] = {}
    dated: list[dict[str, Any]] = []
    for tt in timetables:
        for ev in tt.events:
            if isinstance(ev, LectureEvent):
                parsed["lectures"] += 1
                modules.setdefault(_norm_module(ev.module), {}).setdefault(ev.group, set()).add(ev.activity)
            elif isinstance(ev, TestSitting):
                parsed["tests"] += 1
                dated.append(
                    {
                        "kind": "test",
                        "module": ev.module,
                        "title": ev.test,
                        "date": ev.date.isoformat(),
                        "start": _hm(ev.start),
                        "end": _hm(ev.end),
                        "end_estimated": False,
                        "venues": ev.venues,
                    }
                )
            elif isinstance(ev, ExamSitting):
                parsed["exams"] += 1
                end = ev.end
                if end is None:
                    begin = dt.datetime.combine(ev.date, ev.start)
                    end = (begin + dt.timedelta(minutes=choices.exam_duration_min)).time()
                dated.append(
                    {
                        "kind": "exam",
                        "module": ev.module,
                        "title": f"Exam (paper {ev.paper})",
                        "date": ev.date.isoformat(),
                        "start": _hm(ev.start),
                        "end": _hm(end),
                        "end_estimated": ev.end is None,
                        "venues": [ev.venue] if ev.venue else [],
                    }
                )
    week: dict[str, list[dict[str, Any]]] = {}
    for slot in _lecture_slots(timetables, groups, choices.ics_semester()):
        ev = slot.first
        week.setdefault(ev.weekday, []).append(
            {
                "module": ev.module,
                "activity": ev.activity,
                "group": ev.group,
                "kind": ev.activity_kind,
                "start": _hm(ev.start),
                "end": _hm(ev.end),
                "venues": slot.venues,
            }
        )
    for slots in week.values():
        slots.sort(key=lambda s: (s["start"], s["module"], s["activity"]))
    dated.sort(key=lambda d: (d["date"], d["start"], d["module"]))
    error = None
    try:
        entries = build_calendar(timetables, choices).count(b"BEGIN:VEVENT")
    except SchedgenError as exc:
        entries, error = None, {"code": exc.code, "message": exc.message}
    return {
        "parsed": parsed,
        "calendar_events": entries,
        "calendar_error": error,
        "range": {
            "from": start.isoformat() if start else None,
            "until": until.isoformat() if until else None,
        },
        "modules": [
            {"module": name, "groups": [{"group": g, "activities": sorted(a)} for g, a in sorted(gs.items())]}
            for name, gs in sorted(modules.items())
        ],
        "week": [{"weekday": day, "slots": week[day]} for day in _WEEK_ORDER if day in week],
        "dated": dated,
        "warnings": [w for tt in timetables for w in tt.warnings],
    }


_WEEK_ORDER = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def semester_defaults() -> dict[str, dict[str, str]]:
    """The built-in semester dates, for the page's date fields (the api has no schedgen.yaml)."""
    table = {name: (d.start, d.end) for name, d in DEFAULT_SEMESTERS.items()}
    year = resolve_semester("Y")
    table["Y"] = (year.start, year.end)
    return {name: {"from": a.isoformat(), "until": b.isoformat()} for name, (a, b) in table.items()}
