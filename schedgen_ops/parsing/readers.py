"""Turn table rows into events, one reader per timetable kind.

A row whose identity cell (Module) is empty continues the row before it (a group split by a page
break); it is merged first. Rows a reader cannot understand become warnings, never silent drops.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from schedgen_ops.parsing.errors import ParseError
from schedgen_ops.parsing.model import (
    WEEKDAYS,
    ExamSitting,
    Kind,
    LectureEvent,
    TestSitting,
    Weekday,
    activity_kind,
)
from schedgen_ops.parsing.table import Line, Row, Table, normalise

HEADERS: dict[Kind, tuple[str, ...]] = {
    "lectures": (
        "Module", "Offered", "Group", "Lang", "Activity", "Day", "Time", "Venue", "Campus", "Study Prog",
    ),
    "tests": ("Module", "Test", "Day", "Date", "Time", "Campus", "Venue"),
    "exams": (
        "Status", "Module", "Paper", "Activity", "Date", "Start Time", "Module Campus", "Exam Campus",
        "Venue", "Exam Comments",
    ),
}  # fmt: skip

_TITLES: list[tuple[re.Pattern[str], Kind]] = [
    (re.compile(r"^lectures?\b", re.I), "lectures"),
    (re.compile(r"^(semester )?tests?\b", re.I), "tests"),
    (re.compile(r"^exam(s|inations?)?\b", re.I), "exams"),
]

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {m: i for i, m in enumerate(_MONTH_NAMES, start=1)}
_TIME = re.compile(r"(\d{1,2})[:h](\d{2})")
_DATE = re.compile(r"(\d{1,2})\s+([A-Za-z]{3,})\.?\s+(\d{4})")


class RowError(ValueError):
    """A row the reader cannot understand (reported as a warning)."""


def detect_kind(title: str) -> Kind:
    for pattern, kind in _TITLES:
        if pattern.match(title.strip()):
            return kind
    shown = title.strip()[:80] or "(no title)"
    raise ParseError("not_a_timetable", f'not a UP timetable: the title is "{shown}", expected '
                     '"Lectures", "Semester Tests" or "Exams"')  # fmt: skip


def check_header(kind: Kind, header: list[str] | None) -> None:
    expected = HEADERS[kind]
    found = [h for h in (header or [])]
    if [normalise(h) for h in found] != [normalise(h) for h in expected]:
        raise ParseError(
            "columns_mismatch",
            f"the {kind} table's columns are [{', '.join(found) or 'none'}], "
            f"expected [{', '.join(expected)}]",
        )


def merge_continuations(rows: list[Row], key_col: int) -> tuple[list[Row], list[str]]:
    """Merge rows whose identity cell is empty into the row above (page-break continuations)."""
    merged: list[Row] = []
    warnings: list[str] = []
    for row in rows:
        if not row.cells[key_col]:
            if merged:
                for target, extra in zip(merged[-1].cells, row.cells, strict=True):
                    target.extend(extra)
                continue
            warnings.append(f"page {row.page}: a continuation row has no row above it; skipped")
            continue
        merged.append(Row(row.page, [list(c) for c in row.cells]))
    return merged, warnings


def parse_time(text: str) -> dt.time:
    m = _TIME.search(text)
    if not m:
        raise RowError(f"unreadable time {text!r}")
    try:
        return dt.time(int(m.group(1)), int(m.group(2)))
    except ValueError as exc:
        raise RowError(f"invalid time {text!r}") from exc


def parse_range(text: str) -> tuple[dt.time, dt.time]:
    found = _TIME.findall(text)
    if len(found) != 2:
        raise RowError(f"unreadable time range {text!r}")
    try:
        start, end = (dt.time(int(h), int(m)) for h, m in found)
    except ValueError as exc:
        raise RowError(f"invalid time range {text!r}") from exc
    return start, end


def parse_date(text: str) -> dt.date:
    m = _DATE.search(text)
    month = _MONTHS.get(m.group(2)[:3].lower()) if m else None
    if not m or month is None:
        raise RowError(f"unreadable date {text!r}")
    try:
        return dt.date(int(m.group(3)), month, int(m.group(1)))
    except ValueError as exc:
        raise RowError(f"invalid date {text!r}") from exc


def parse_weekday(text: str) -> Weekday:
    for day in WEEKDAYS:
        if text.strip().lower() == day.lower() or text.strip().lower() == day[:3].lower():
            return day
    raise RowError(f"unreadable day {text!r}")


def join_wrapped(lines: list[Line]) -> str:
    """Undo a cell's line wrap: "PTest" + "1" -> "PTest1", "Exam" + "Written" -> "Exam Written"."""
    out = ""
    for line in lines:
        if out and out[-1].isalpha() and line.text[:1].isdigit():
            out += line.text
        else:
            out = f"{out} {line.text}" if out else line.text
    return out


def _slot_of(key: tuple[int, float], anchors: list[tuple[int, float]]) -> int:
    """Index of the last anchor line at or above ``key`` (2 pt tolerance), or -1."""
    idx = -1
    for i, (page, top) in enumerate(anchors):
        if (page, top - 2.0) <= key:
            idx = i
    return idx


def read_lectures(rows: list[Row]) -> tuple[list[LectureEvent], list[str]]:
    events: list[LectureEvent] = []
    warnings: list[str] = []
    for row in rows:
        module = row.text(0)
        try:
            lang_parts = row.text(3).split()
            language = lang_parts[0] if lang_parts else ""
            anchors = [line.key for line in row.cells[4]]
            if not anchors:
                raise RowError("no activity")
            slots: list[dict[int, list[Line]]] = [{} for _ in anchors]
            for col in (5, 6, 7):
                for line in row.cells[col]:
                    i = _slot_of(line.key, anchors)
                    if i < 0:
                        raise RowError(f"text {line.text!r} above the first activity")
                    slots[i].setdefault(col, []).append(line)
            for act_line, slot in zip(row.cells[4], slots, strict=True):
                try:
                    start, end = parse_range(" ".join(x.text for x in slot.get(6, [])))
                    events.append(
                        LectureEvent(
                            module=module,
                            activity=act_line.text,
                            activity_kind=activity_kind(act_line.text),
                            group=row.text(2),
                            language=language,
                            offered=row.text(1),
                            weekday=parse_weekday(" ".join(x.text for x in slot.get(5, []))),
                            start=start,
                            end=end,
                            venue=" ".join(x.text for x in slot.get(7, [])),
                            campus=row.text(8),
                            study_programme=row.text(9),
                        )
                    )
                except RowError as exc:
                    warnings.append(f"page {act_line.key[0]}: {module} {act_line.text}: {exc}; skipped")
        except RowError as exc:
            warnings.append(f"page {row.page}: {module}: {exc}; row skipped")
    return events, warnings


def read_tests(rows: list[Row]) -> tuple[list[TestSitting], list[str]]:
    events: list[TestSitting] = []
    warnings: list[str] = []
    for row in rows:
        module = row.text(0)
        try:
            start, end = parse_range(row.text(4))
            date = parse_date(row.text(3))
            day = row.text(2)
            if day and parse_weekday(day) != WEEKDAYS[date.weekday()]:
                warnings.append(f"page {row.page}: {module}: {date} is not a {day}")
            events.append(
                TestSitting(
                    module=module,
                    test=join_wrapped(row.cells[1]),
                    date=date,
                    start=start,
                    end=end,
                    campus=row.text(5),
                    venues=[line.text for line in row.cells[6]],
                )
            )
        except RowError as exc:
            warnings.append(f"page {row.page}: {module}: {exc}; row skipped")
    return events, warnings


def read_exams(rows: list[Row]) -> tuple[list[ExamSitting], list[str]]:
    events: list[ExamSitting] = []
    warnings: list[str] = []
    for row in rows:
        module = row.text(1)
        try:
            times = row.text(5)
            found = _TIME.findall(times)
            start = parse_time(times)
            end = parse_range(times)[1] if len(found) == 2 else None
            events.append(
                ExamSitting(
                    status=row.text(0),
                    module=module,
                    paper=row.text(2),
                    activity=join_wrapped(row.cells[3]),
                    date=parse_date(row.text(4)),
                    start=start,
                    end=end,
                    module_campus=row.text(6),
                    exam_campus=row.text(7),
                    venue=row.text(8),
                    comments=row.text(9),
                )
            )
        except RowError as exc:
            warnings.append(f"page {row.page}: {module}: {exc}; row skipped")
    return events, warnings


Reader = Callable[[list[Row]], tuple[list, list[str]]]
READERS: dict[Kind, tuple[int, Reader]] = {
    "lectures": (0, read_lectures),
    "tests": (0, read_tests),
    "exams": (1, read_exams),
}


def read_table(kind: Kind, table: Table) -> tuple[list, list[str]]:
    key_col, reader = READERS[kind]
    rows, warnings = merge_continuations(table.rows, key_col)
    events, more = reader(rows)
    return events, warnings + more
