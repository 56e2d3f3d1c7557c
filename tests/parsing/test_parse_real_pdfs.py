"""The three real UP PDFs parse to exactly the documented events (DESIGN.md §7)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from schedgen_ops.parsing import ExamSitting, LectureEvent, ParseError, TestSitting, parse_pdf


@pytest.fixture
def lectures(up_pdf):
    return parse_pdf(up_pdf("UP_MOD_XLS.pdf"))


@pytest.fixture
def tests_tt(up_pdf):
    return parse_pdf(up_pdf("UP_TST_PDF.pdf"))


@pytest.fixture
def exams(up_pdf):
    return parse_pdf(up_pdf("UP_EXAM_SS.pdf"))


def test_lectures_counts(lectures):
    assert lectures.kind == "lectures"
    assert lectures.warnings == []
    assert lectures.source is not None and lectures.source.pages == 2 and lectures.source.title == "Lectures"
    events = lectures.events
    assert all(isinstance(e, LectureEvent) for e in events)
    assert len(events) == 46
    assert len({(e.module, e.group) for e in events}) == 19
    assert {e.module for e in events} == {"COS 214", "COS 226", "COS 284", "STK 220", "WTW 285"}
    assert Counter(e.module for e in events)["STK 220"] == 12


def test_lectures_multiline_cells_pair_by_line(lectures):
    cos214 = [e for e in lectures.events if e.module == "COS 214" and e.group == "G01"]
    assert [(e.activity, e.weekday, e.start, e.end, e.venue) for e in cos214] == [
        ("L1", "Monday", dt.time(8, 30), dt.time(9, 20), "Centenary 6"),
        ("L2", "Tuesday", dt.time(7, 30), dt.time(8, 20), "IT 4-4"),
        ("L3", "Thursday", dt.time(9, 30), dt.time(10, 20), "IT 4-4"),
        ("L4", "Friday", dt.time(12, 30), dt.time(13, 20), "IT 4-4"),
    ]
    first = cos214[0]
    identity = (first.language, first.offered, first.campus, first.activity_kind)
    assert identity == ("E", "S2", "HATFIELD", "lecture")


def test_lectures_continuation_across_page_break(lectures):
    # STK 220 P03 starts on page 1 (CBT Lab 1) and continues on page 2 (CBT Labs 2 and 3).
    p03 = [e for e in lectures.events if e.module == "STK 220" and e.group == "P03"]
    assert [e.venue for e in p03] == [f"Informatorium CBT Lab {n}" for n in (1, 2, 3)]
    assert {(e.activity, e.weekday, e.start, e.end, e.campus, e.activity_kind) for e in p03} == {
        ("P1", "Tuesday", dt.time(11, 30), dt.time(12, 20), "HATFIELD", "practical")
    }
    # The row after the continuation is a new group on page 2.
    wtw = [e for e in lectures.events if e.module == "WTW 285"]
    assert [(e.group, e.activity, e.venue) for e in wtw] == [
        ("G01", "L1", "EMS 4-152"),
        ("G01", "L2", "EMS 4-152"),
        ("T01", "T1", "IT 2-26"),
        ("T02", "T1", "HB 4-1"),
        ("T02", "T1", "HB 4-3"),
        ("T03", "T1", "HB 4-3"),
    ]
    assert wtw[2].activity_kind == "tutorial"


def test_tests_counts_and_wrap(tests_tt):
    assert tests_tt.kind == "tests" and tests_tt.warnings == []
    sittings = tests_tt.events
    assert all(isinstance(e, TestSitting) for e in sittings)
    assert len(sittings) == 12
    assert sum(len(e.venues) for e in sittings) == 55
    assert [e.test for e in sittings if e.module == "STK 220"] == ["Test1", "PTest1", "Test2", "PTest2"]


def test_tests_ptest2_thirteen_venues_across_pages(tests_tt):
    (ptest2,) = [e for e in tests_tt.events if e.module == "STK 220" and e.test == "PTest2"]
    assert ptest2.date == dt.date(2025, 10, 15)
    assert (ptest2.start, ptest2.end, ptest2.campus) == (dt.time(15, 0), dt.time(17, 0), "HATFIELD")
    assert ptest2.venues == [
        "Informatorium Brown Lab",
        "Informatorium SIT 1 lab",
        "Informatorium Purple Lab",
        # page 2 from here
        "Informatorium Maroon Lab",
        "Informatorium Grey Lab",
        "Informatorium Green Lab",
        "Informatorium CBT Lab 3",
        "Informatorium CBT Lab 2",
        "Informatorium CBT Lab 1",
        "IT Open Bronze Lab",
        "IT Open Copper Lab",
        "IT Open Gold Lab",
        "IT Open Silver Lab",
    ]
    (wtw2,) = [e for e in tests_tt.events if e.module == "WTW 285" and e.test == "Test2"]
    assert (wtw2.date, wtw2.venues) == (dt.date(2025, 10, 16), ["AE du Toit Auditorium"])


def test_exams(exams):
    assert exams.kind == "exams" and exams.warnings == []
    assert all(isinstance(e, ExamSitting) for e in exams.events)
    assert [(e.module, e.date, e.start) for e in exams.events] == [
        ("COS 284", dt.date(2025, 11, 12), dt.time(7, 30)),
        ("COS 214", dt.date(2025, 11, 13), dt.time(15, 0)),
        ("STK 220", dt.date(2025, 11, 14), dt.time(7, 30)),
        ("COS 226", dt.date(2025, 11, 15), dt.time(11, 15)),
        ("WTW 285", dt.date(2025, 11, 17), dt.time(7, 30)),
    ]
    first = exams.events[0]
    assert first.status == "FINAL" and first.paper == "1" and first.activity == "Exam Written"
    assert first.end is None
    assert (first.module_campus, first.exam_campus) == ("HATF", "HATFIELD")
    assert first.venue == "IT Building CBT Labs 1,2,3"
    assert exams.events[2].venue == "Thuto 3-1"


def test_bytes_and_path_give_the_same_events(up_pdf):
    path = up_pdf("UP_TST_PDF.pdf")
    assert parse_pdf(path.read_bytes()).events == parse_pdf(path).events


def test_not_a_timetable_names_the_title(up_pdf):
    with pytest.raises(ParseError) as info:
        parse_pdf(up_pdf("not-a-timetable.pdf"))
    assert info.value.code == "not_a_timetable"
    assert "Random Schedule Document" in info.value.message


def test_the_file_is_opened_once(up_pdf, monkeypatch):
    import schedgen_ops.parsing.api as api

    opened = []
    real_open = api.open_document

    def counting_open(data: bytes):
        opened.append(len(data))
        return real_open(data)

    monkeypatch.setattr(api, "open_document", counting_open)
    assert len(parse_pdf(up_pdf("UP_MOD_XLS.pdf")).events) == 46
    assert len(opened) == 1
