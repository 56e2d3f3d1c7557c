"""Calendar (.ics) output through the icalendar library.

Every time carries TZID=Africa/Johannesburg with a VTIMEZONE; lectures become one weekly RRULE event per
distinct slot (a practical held in several labs at once is one event listing every lab), tests and exams
single events. UIDs hash the slot's identity (not its venue or dates) so re-importing a corrected
timetable updates events instead of duplicating them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from schedgen_ops.errors import SchedgenError
from schedgen_ops.parsing.model import WEEKDAYS, ExamSitting, LectureEvent, TestSitting, Timetable
from schedgen_ops.parsing.semesters import offered_in

TZ = ZoneInfo("Africa/Johannesburg")
UID_DOMAIN = "schedgen.up-schedule-generator"
PRODID = "-//schedgen//UP Schedule Generator//EN"

GroupFilter = Mapping[str, frozenset[str]]


def _norm_module(module: str) -> str:
    return re.sub(r"\s+", " ", module).strip().upper()


def parse_group_filters(specs: Iterable[str]) -> dict[str, frozenset[str]]:
    """``["COS 214=P01", "COS 214=G01,P02"]`` -> ``{"COS 214": {"G01", "P01", "P02"}}``."""
    out: dict[str, set[str]] = {}
    for spec in specs:
        module, sep, groups = spec.partition("=")
        names = {g.strip().upper() for g in groups.split(",") if g.strip()}
        if not sep or not module.strip() or not names:
            raise SchedgenError(
                f"bad --group {spec!r}",
                code="bad_group_filter",
                hint='write it as "MODULE=GROUP[,GROUP...]", e.g. --group "COS 214=P01"',
                exit_code=2,
            )
        out.setdefault(_norm_module(module), set()).update(names)
    return {k: frozenset(v) for k, v in out.items()}


def _uid(*parts: object) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]
    return f"{digest}@{UID_DOMAIN}"


@dataclass
class _Slot:
    first: LectureEvent
    venues: list[str] = field(default_factory=list)


def _lecture_slots(timetables: Iterable[Timetable], groups: GroupFilter, semester: str | None) -> list[_Slot]:
    slots: dict[tuple[object, ...], _Slot] = {}
    for tt in timetables:
        for ev in tt.events:
            if not isinstance(ev, LectureEvent):
                continue
            wanted = groups.get(_norm_module(ev.module))
            if wanted is not None and ev.group.upper() not in wanted:
                continue
            if semester and not offered_in(ev.offered, semester):
                continue
            key = (ev.module, ev.group, ev.activity, ev.weekday, ev.start, ev.end)
            slot = slots.setdefault(key, _Slot(ev))
            if ev.venue and ev.venue not in slot.venues:
                slot.venues.append(ev.venue)
    return list(slots.values())


def first_on_or_after(day: dt.date, weekday: str) -> dt.date:
    return day + dt.timedelta(days=(WEEKDAYS.index(weekday) - day.weekday()) % 7)


def _event(uid: str, summary: str, start: dt.datetime, end: dt.datetime, stamp: dt.datetime) -> Event:
    ev = Event()
    ev.add("uid", uid)
    ev.add("dtstamp", stamp)
    ev.add("summary", summary)
    ev.add("dtstart", start)
    ev.add("dtend", end)
    return ev


def to_ics(
    timetables: Iterable[Timetable],
    *,
    date_from: dt.date | None = None,
    date_until: dt.date | None = None,
    exam_duration_min: int = 180,
    group_filter: GroupFilter | None = None,
    semester: str | None = None,
    dtstamp: dt.datetime | None = None,
) -> bytes:
    """Build one calendar from any mix of lectures, tests and exams timetables.

    Lectures repeat weekly from the first matching weekday on or after ``date_from`` through
    ``date_until`` inclusive; they need both dates. ``group_filter`` keeps only the listed groups of the
    modules it names (other modules keep all groups). ``semester`` ("S1"/"S2") drops modules offered in
    the other semester.
    """
    timetables = list(timetables)
    groups = group_filter or {}
    stamp = (dtstamp or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("x-wr-timezone", "Africa/Johannesburg")
    cal.add("x-wr-calname", "UP timetable")

    slots = _lecture_slots(timetables, groups, semester)
    if slots:
        if date_from is None or date_until is None:
            raise SchedgenError(
                "lectures need a date range for a calendar",
                code="date_range_required",
                hint="give --from DATE and --until DATE, or --semester S1|S2|Y",
                exit_code=2,
            )
        if date_until < date_from:
            raise SchedgenError(
                f"--until {date_until} is before --from {date_from}",
                code="bad_date_range",
                hint="swap the dates",
                exit_code=2,
            )
        until_utc = dt.datetime.combine(date_until, dt.time(23, 59, 59), TZ).astimezone(dt.UTC)
        for slot in slots:
            ev = slot.first
            day = first_on_or_after(date_from, ev.weekday)
            if day > date_until:
                continue
            vevent = _event(
                _uid("lecture", ev.module, ev.group, ev.activity, ev.weekday, ev.start, ev.end),
                f"{ev.module} {ev.activity}",
                dt.datetime.combine(day, ev.start, TZ),
                dt.datetime.combine(day, ev.end, TZ),
                stamp,
            )
            vevent.add("rrule", {"freq": "weekly", "until": until_utc})
            vevent.add("location", "; ".join(slot.venues))
            vevent.add(
                "description",
                f"{ev.activity_kind.capitalize()} {ev.activity}, group {ev.group}, language {ev.language}, "
                f"offered {ev.offered}, campus {ev.campus}",
            )
            vevent.add("categories", [ev.activity_kind])
            cal.add_component(vevent)

    seen: set[str] = set()
    for tt in timetables:
        for item in tt.events:
            if isinstance(item, TestSitting):
                uid = _uid("test", item.module, item.test)
                vevent = _event(
                    uid,
                    f"{item.module} {item.test}",
                    dt.datetime.combine(item.date, item.start, TZ),
                    dt.datetime.combine(item.date, item.end, TZ),
                    stamp,
                )
                vevent.add("location", "; ".join(item.venues))
                vevent.add("description", f"Semester test, campus {item.campus}, {len(item.venues)} venue(s)")
                vevent.add("categories", ["test"])
            elif isinstance(item, ExamSitting):
                uid = _uid("exam", item.module, item.paper, item.activity)
                start = dt.datetime.combine(item.date, item.start, TZ)
                if item.end is not None:
                    end = dt.datetime.combine(item.date, item.end, TZ)
                    note = ""
                else:
                    end = start + dt.timedelta(minutes=exam_duration_min)
                    note = (
                        f"End time is an estimate: start + {exam_duration_min} min "
                        "(the UP exam timetable gives only the start time). "
                    )
                vevent = _event(uid, f"{item.module} Exam (paper {item.paper})", start, end, stamp)
                vevent.add("location", item.venue)
                desc = f"{note}{item.status} {item.activity}, exam campus {item.exam_campus}"
                if item.comments:
                    desc += f". {item.comments}"
                vevent.add("description", desc)
                vevent.add("categories", ["exam"])
            else:
                continue
            if uid in seen:  # the same sitting from two files: keep the first
                continue
            seen.add(uid)
            cal.add_component(vevent)

    cal.add_missing_timezones()
    return bytes(cal.to_ical())
