"""ICS output read back with icalendar and expanded with recurring-ical-events."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar

from schedgen_ops.errors import SchedgenError
from schedgen_ops.parsing import LectureEvent, parse_pdf
from schedgen_ops.parsing.ics import parse_group_filters, to_ics
from schedgen_ops.parsing.model import WEEKDAYS
from schedgen_ops.parsing.synthetic import generate_timetable

SAST = ZoneInfo("Africa/Johannesburg")
FROM, UNTIL = dt.date(2026, 7, 20), dt.date(2026, 10, 23)  # a Monday .. a Friday


@pytest.fixture
def real(up_pdf):
    return [parse_pdf(up_pdf(n)) for n in ("UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf")]


def _read(data: bytes) -> Calendar:
    return Calendar.from_ical(data)


def _events(cal: Calendar) -> list:
    return list(cal.walk("VEVENT"))


def test_every_weekly_class_occurs_on_every_matching_day_inclusive(real):
    cal = _read(to_ics(real[:1], date_from=FROM, date_until=UNTIL))
    lectures = real[0].events
    occurrences = recurring_ical_events.of(cal).between(FROM, UNTIL + dt.timedelta(days=1))
    by_summary: dict[str, set[dt.datetime]] = {}
    for occ in occurrences:
        by_summary.setdefault(str(occ["SUMMARY"]), set()).add(occ["DTSTART"].dt)
    for ev in lectures:
        assert isinstance(ev, LectureEvent)
        wd = WEEKDAYS.index(ev.weekday)
        days = [FROM + dt.timedelta(days=i) for i in range((UNTIL - FROM).days + 1)]
        expected = {dt.datetime.combine(d, ev.start, SAST) for d in days if d.weekday() == wd}
        got = {
            o for o in by_summary[f"{ev.module} {ev.activity}"] if o.timetz() == ev.start.replace(tzinfo=SAST)
        }
        assert {o.astimezone(SAST) for o in got} >= expected
    # The last day (Friday 23 Oct) has its classes, e.g. COS 214 L4 at 12:30 local time.
    fridays = [o for o in occurrences if str(o["SUMMARY"]) == "COS 214 L4"]
    last = max(o["DTSTART"].dt for o in fridays)
    assert last == dt.datetime(2026, 10, 23, 12, 30, tzinfo=SAST)
    assert last.utcoffset() == dt.timedelta(hours=2)
    assert len(fridays) == 14  # Fridays 24 Jul .. 23 Oct


def test_counts_exactly_per_slot(real):
    cal = _read(to_ics(real[:1], date_from=FROM, date_until=UNTIL))
    occ = recurring_ical_events.of(cal).between(FROM, UNTIL + dt.timedelta(days=1))
    mondays = sum(1 for d in range((UNTIL - FROM).days + 1) if (FROM + dt.timedelta(days=d)).weekday() == 0)
    cos214_l1 = [o for o in occ if str(o["SUMMARY"]) == "COS 214 L1"]
    assert len(cos214_l1) == mondays == 14
    assert all(o["DTSTART"].dt.astimezone(SAST).time() == dt.time(8, 30) for o in cos214_l1)
    assert all(o["DTEND"].dt.astimezone(SAST).time() == dt.time(9, 20) for o in cos214_l1)


def test_timezone_and_tzid_on_every_time(real):
    data = to_ics(real, date_from=FROM, date_until=UNTIL)
    text = data.decode()
    cal = _read(data)
    (tz,) = cal.walk("VTIMEZONE")
    assert str(tz["TZID"]) == "Africa/Johannesburg"
    in_event = False
    for line in text.splitlines():
        in_event = (in_event or line == "BEGIN:VEVENT") and line != "END:VEVENT"
        if in_event and line.startswith(("DTSTART", "DTEND")):
            assert line.startswith(("DTSTART;TZID=Africa/Johannesburg:", "DTEND;TZID=Africa/Johannesburg:"))
    for ev in _events(cal):
        assert ev["DTSTART"].params["TZID"] == "Africa/Johannesburg"
        assert ev["DTEND"].params["TZID"] == "Africa/Johannesburg"


def test_one_event_per_distinct_slot_with_all_venues(real):
    cal = _read(to_ics(real[:1], date_from=FROM, date_until=UNTIL))
    events = _events(cal)
    lectures = real[0].events
    slots = {(e.module, e.group, e.activity, e.weekday, e.start, e.end) for e in lectures}
    assert len(events) == len(slots) == 30  # 46 lines; practicals in several labs collapse
    (p03,) = [
        e for e in events if str(e["SUMMARY"]) == "STK 220 P1" and e["DTSTART"].dt.time() == dt.time(11, 30)
    ]
    assert str(p03["LOCATION"]) == "; ".join(f"Informatorium CBT Lab {n}" for n in (1, 2, 3))
    assert all("RRULE" in e for e in events)


def test_tests_and_exams_are_single_events(real):
    cal = _read(to_ics(real[1:], exam_duration_min=150))
    events = {str(e["SUMMARY"]): e for e in _events(cal)}
    assert len(events) == 17
    ptest2 = events["STK 220 PTest2"]
    assert "RRULE" not in ptest2
    assert ptest2["DTSTART"].dt == dt.datetime(2025, 10, 15, 15, 0, tzinfo=SAST)
    assert ptest2["DTEND"].dt == dt.datetime(2025, 10, 15, 17, 0, tzinfo=SAST)
    assert len(str(ptest2["LOCATION"]).split("; ")) == 13
    exam = events["COS 284 Exam (paper 1)"]
    assert exam["DTSTART"].dt == dt.datetime(2025, 11, 12, 7, 30, tzinfo=SAST)
    assert exam["DTEND"].dt == dt.datetime(2025, 11, 12, 10, 0, tzinfo=SAST)
    assert "estimate" in str(exam["DESCRIPTION"]) and "150 min" in str(exam["DESCRIPTION"])
    assert str(exam["LOCATION"]) == "IT Building CBT Labs 1,2,3"


def test_uids_are_stable_and_content_derived(real):
    a = _read(to_ics(real, date_from=FROM, date_until=UNTIL))
    b = _read(to_ics(real, date_from=dt.date(2026, 8, 3), date_until=dt.date(2026, 9, 30)))
    uids_a = [str(e["UID"]) for e in _events(a)]
    assert len(set(uids_a)) == len(uids_a)
    assert uids_a == [str(e["UID"]) for e in _events(b)]


def test_merging_files_deduplicates_the_same_sitting(real):
    once = _events(_read(to_ics(real[1:2])))
    twice = _events(_read(to_ics([real[1], real[1]])))
    assert len(once) == len(twice) == 12


def test_group_filter_keeps_only_named_groups(real):
    flt = parse_group_filters(["COS 214=P01", "cos 226 = g01,P03"])
    assert flt == {"COS 214": frozenset({"P01"}), "COS 226": frozenset({"G01", "P03"})}
    cal = _read(to_ics(real[:1], date_from=FROM, date_until=UNTIL, group_filter=flt))
    descs = [(str(e["SUMMARY"]), str(e["DESCRIPTION"])) for e in _events(cal)]
    cos214 = [d for s, d in descs if s.startswith("COS 214")]
    assert len(cos214) == 1 and "group P01" in cos214[0]
    cos226_groups = {d.split("group ")[1].split(",")[0] for s, d in descs if s.startswith("COS 226")}
    assert cos226_groups == {"G01", "P03"}
    assert any(s.startswith("WTW 285") for s, _ in descs)  # unnamed modules keep every group
    with pytest.raises(SchedgenError) as info:
        parse_group_filters(["COS 214"])
    assert info.value.code == "bad_group_filter"


def test_lectures_without_dates_name_both_options(real):
    with pytest.raises(SchedgenError) as info:
        to_ics(real[:1])
    assert info.value.code == "date_range_required"
    assert "--from" in info.value.one_line() and "--semester" in info.value.one_line()


def test_semester_drops_modules_of_the_other_semester():
    tt = generate_timetable("lectures", seed=5, n_rows=30, semester="S1")
    lectures = [e for e in tt.events if isinstance(e, LectureEvent)]
    assert {e.offered for e in lectures} == {"S1", "Y"}
    year_modules = {e.module for e in lectures if e.offered == "Y"}
    s2 = _events(_read(to_ics([tt], date_from=FROM, date_until=UNTIL, semester="S2")))
    assert {str(e["SUMMARY"]).rsplit(" ", 1)[0] for e in s2} == year_modules
    s1 = _events(_read(to_ics([tt], date_from=FROM, date_until=UNTIL, semester="S1")))
    assert len(s1) > len(s2)


def test_class_after_until_is_left_out():
    tt = generate_timetable("lectures", seed=2, n_rows=5)
    day = dt.date(2026, 7, 20)  # Monday: only Monday classes fit a one-day range
    cal = _read(to_ics([tt], date_from=day, date_until=day))
    mondays = {
        (e.module, e.activity, e.group)
        for e in tt.events
        if isinstance(e, LectureEvent) and e.weekday == "Monday"
    }
    assert len(_events(cal)) == len(mondays)
