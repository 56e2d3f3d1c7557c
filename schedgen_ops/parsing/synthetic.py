"""Synthetic UP-format timetable PDFs: random timetables and a renderer that mimics the real layout.

The layout copies the real exports (Oracle Analytics Publisher): landscape A4, a 20 pt bold title on
page 1, tables drawn with thin filled rectangles, multi-line cells, the header row on page 1 only, and a
group split by a page break continued on the next page by a row whose identity cells are empty.
Column positions and font sizes are the real ones. Property tests parse what this renders and expect
the generated timetable back; load tests use it for fixtures of any size.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Literal

from fpdf import FPDF

from schedgen_ops.parsing.model import (
    WEEKDAYS,
    ExamSitting,
    Kind,
    LectureEvent,
    TestSitting,
    Timetable,
    activity_kind,
)
from schedgen_ops.parsing.readers import HEADERS
from schedgen_ops.parsing.semesters import DEFAULT_YEAR

Semester = Literal["S1", "S2"]

PAGE_W, PAGE_H = 841.89, 595.28
FIRST_TOP, NEXT_TOP, MAX_BOTTOM = 73.4, 36.0, 556.0
RULE = 0.5
PAD_X, PAD_TOP, PAD_BOTTOM = 5.6, 2.0, 1.5

TITLES: dict[Kind, str] = {"lectures": "Lectures", "tests": "Semester Tests", "exams": "Exams"}
# Vertical rule positions measured on the real PDFs (points from the left edge).
COLUMNS: dict[Kind, tuple[float, ...]] = {
    "lectures": (35.8, 92.5, 135.0, 177.5, 212.9, 262.6, 326.4, 397.2, 553.1, 638.2, 744.5),
    "tests": (35.8, 92.5, 135.0, 213.0, 291.0, 368.9, 461.1, 652.4),
    "exams": (35.8, 85.2, 143.8, 184.2, 238.2, 314.8, 361.8, 453.9, 546.1, 673.6, 765.8),
}
FONT_SIZE: dict[Kind, float] = {"lectures": 10.0, "tests": 11.0, "exams": 10.0}
# Columns set in another size than the rest of their table (the tests' Module column is 10 pt).
COLUMN_FONT: dict[tuple[Kind, int], float] = {("tests", 0): 10.0}
# Header cells that the real exports wrap onto two lines.
HEADER_LINES: dict[str, list[str]] = {
    "Start Time": ["Start", "Time"],
    "Module Campus": ["Module", "Campus"],
    "Exam Comments": ["Exam", "Comments"],
}

_SUBJECTS = ("COS", "STK", "WTW", "INF", "EKN", "FRK", "BME", "MKB", "CMY", "PHY", "BOT", "GGY", "IMY")
# Campus names that fit the narrowest Campus column (the real exports abbreviate long ones).
_CAMPUSES = ("HATFIELD", "GROENKLOOF", "PRINSHOF", "MAMELODI")
_ROOMS = (
    "IT 4-4",
    "IT 2-26",
    "IT 2-23",
    "EMS 4-152",
    "Centenary 6",
    "Centenary 1",
    "HB 4-1",
    "HB 4-3",
    "Thuto 3-1",
    "Eng III - 7",
    "Law 2-38",
    "Chancellors 1-60",
    "Aula Theatre",
    "Musaion",
)
_LABS = (
    "Informatorium Grey Lab",
    "Informatorium Orange Lab",
    "Informatorium Blue Lab 1",
    "Informatorium Blue Lab 2",
    "Informatorium CBT Lab 1",
    "Informatorium CBT Lab 2",
    "Informatorium SIT 1 lab",
    "IT Open Bronze Lab",
    "IT Open Gold Lab",
    "AE du Toit Auditorium",
    "AE Annex",
)
# Long enough to wrap in the lectures Venue column (exercises multi-line venues within one slot).
_LONG_VENUES = (
    "Natural and Agricultural Sciences Building Lecture Hall 2-12",
    "Engineering Building III Computer Laboratory Room 4-12",
)
_EXAM_VENUES = ("IT Building CBT Labs 1,2,3", "Thuto 3-1", "Eng III - 7", "Sports Centre Hall 1 and Hall 2")
_COMMENTS = ("", "", "", "Bring a scientific calculator", "Open book: printed notes allowed")


# --------------------------------------------------------------------------------------------------
# Random timetables


def _module_codes(rng: random.Random) -> Iterator[str]:
    seen: set[str] = set()
    while True:
        code = f"{rng.choice(_SUBJECTS)} {rng.randint(1, 7)}{rng.randint(0, 9)}{rng.randint(0, 9)}"
        if code not in seen:
            seen.add(code)
            yield code


def _slot(rng: random.Random, minutes: int) -> tuple[dt.time, dt.time]:
    """A class starting on the half hour, e.g. 50 min -> "08:30 - 09:20" (UP's 10-minute changeover)."""
    start = dt.datetime(2000, 1, 1, rng.randint(7, 18 - (minutes + 30) // 60), 30)
    return start.time(), (start + dt.timedelta(minutes=minutes)).time()


def _lecture_groups(rng: random.Random, module: str, offered: str) -> Iterator[list[LectureEvent]]:
    language = rng.choice("EEEA")
    campus = rng.choice(_CAMPUSES)

    def ev(activity: str, group: str, weekday: str, start: dt.time, end: dt.time, venue: str) -> LectureEvent:
        return LectureEvent(
            module=module,
            activity=activity,
            activity_kind=activity_kind(activity),
            group=group,
            language=language,
            offered=offered,
            weekday=weekday,  # type: ignore[arg-type]
            start=start,
            end=end,
            venue=venue,
            campus=campus,
        )

    days = rng.sample(WEEKDAYS[:5], rng.randint(1, 4))
    lectures = []
    for i, day in enumerate(days, start=1):
        start, end = _slot(rng, rng.choice((50, 50, 50, 110)))
        venue = rng.choice(_ROOMS + _LONG_VENUES) if rng.random() < 0.2 else rng.choice(_ROOMS)
        lectures.append(ev(f"L{i}", "G01", day, start, end, venue))
    yield lectures
    for g in range(1, rng.randint(0, 3) + 1):
        day = rng.choice(WEEKDAYS[:5])
        start, end = _slot(rng, 170)
        labs = rng.sample(_LABS, rng.randint(1, 4))
        yield [ev("P1", f"P{g:02d}", day, start, end, lab) for lab in labs]
    for g in range(1, rng.randint(0, 2) + 1):
        day = rng.choice(WEEKDAYS[:5])
        start, end = _slot(rng, 80)
        rooms = rng.sample(_ROOMS, rng.randint(1, 2))
        yield [ev("T1", f"T{g:02d}", day, start, end, room) for room in rooms]


#: (first, last) (month, day) of each semester's lectures and of its exam session.
_TERMS: dict[tuple[Semester, bool], tuple[tuple[int, int], tuple[int, int]]] = {
    ("S1", False): ((2, 20), (5, 29)),
    ("S2", False): ((7, 27), (10, 23)),
    ("S1", True): ((5, 25), (6, 26)),
    ("S2", True): ((10, 27), (11, 27)),
}


def _semester_range(semester: Semester, year: int, exams: bool) -> tuple[dt.date, dt.date]:
    first, last = _TERMS["S1" if semester == "S1" else "S2", exams]  # as before: anything else is S2
    return dt.date(year, *first), dt.date(year, *last)


def _random_date(rng: random.Random, lo: dt.date, hi: dt.date) -> dt.date:
    return lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))


def _test_rows(rng: random.Random, semester: Semester, year: int) -> Iterator[list[TestSitting]]:
    lo, hi = _semester_range(semester, year, exams=False)
    for module in _module_codes(rng):
        for name in rng.sample(("Test1", "Test2", "PTest1", "PTest2", "STest"), rng.randint(1, 3)):
            start_h = rng.randint(7, 16)
            start = dt.time(start_h, rng.choice((0, 30)))
            end = (dt.datetime.combine(lo, start) + dt.timedelta(minutes=rng.choice((60, 90, 120)))).time()
            yield [
                TestSitting(
                    module=module,
                    test=name,
                    date=_random_date(rng, lo, hi),
                    start=start,
                    end=end,
                    campus=rng.choice(_CAMPUSES),
                    venues=rng.sample(_LABS + _ROOMS, rng.randint(1, 13)),
                )
            ]


def _exam_rows(rng: random.Random, semester: Semester, year: int) -> Iterator[list[ExamSitting]]:
    lo, hi = _semester_range(semester, year, exams=True)
    for module in _module_codes(rng):
        for paper in range(1, rng.choice((1, 1, 1, 2)) + 1):
            yield [
                ExamSitting(
                    status=rng.choice(("FINAL", "FINAL", "FINAL", "SUPP")),
                    module=module,
                    paper=str(paper),
                    activity=rng.choice(("Exam Written", "Exam Written", "Exam Oral")),
                    date=_random_date(rng, lo, hi),
                    start=dt.time(rng.choice((7, 8, 11, 12, 15)), rng.choice((0, 15, 30))),
                    module_campus=rng.choice(("HATF", "GROK", "ONDE")),
                    exam_campus=rng.choice(_CAMPUSES),
                    venue=rng.choice(_EXAM_VENUES),
                    comments=rng.choice(_COMMENTS),
                )
            ]


def _row_stream(kind: Kind, rng: random.Random, semester: Semester, year: int) -> Iterator[list]:
    if kind == "lectures":
        for module in _module_codes(rng):
            offered = semester if rng.random() < 0.85 else "Y"
            yield from _lecture_groups(rng, module, offered)
    elif kind == "tests":
        yield from _test_rows(rng, semester, year)
    else:
        yield from _exam_rows(rng, semester, year)


def generate_timetable(
    kind: Kind,
    *,
    seed: int = 0,
    n_rows: int | None = None,
    pages: int | None = None,
    semester: Semester = "S2",
    year: int = DEFAULT_YEAR,
) -> Timetable:
    """A random timetable of ``n_rows`` table rows, or as many rows as fill exactly ``pages`` pages."""
    if (n_rows is None) == (pages is None):
        raise ValueError("give exactly one of n_rows or pages")
    rng = random.Random(f"{kind}:{seed}:{semester}:{year}")
    stream = _row_stream(kind, rng, semester, year)
    rows: list[list] = []
    if n_rows is not None:
        rows = [next(stream) for _ in range(max(n_rows, 0))]
    else:
        assert pages is not None
        layout = _Layout(kind)
        for row in stream:
            if not layout.add(_cells_of(kind, row)) or layout.pages > pages:
                break
            rows.append(row)
    return Timetable(kind=kind, events=[e for row in rows for e in row])


# --------------------------------------------------------------------------------------------------
# Rendering


@dataclass
class _RowCells:
    """A table row: identity cells shown once, then slots (sub-rows) that may continue on a new page."""

    identity: dict[int, list[str]]
    slots: list[dict[int, list[str]]]


def _width(text: str, size: float, bold: bool = False) -> float:
    return _MEASURE.width(text, size, bold)


class _Measure:
    def __init__(self) -> None:
        self.pdf = FPDF(orientation="L", unit="pt", format="A4")
        self.pdf.add_page()

    def width(self, text: str, size: float, bold: bool) -> float:
        self.pdf.set_font("Helvetica", "B" if bold else "", size)
        return float(self.pdf.get_string_width(text))


_MEASURE = _Measure()


def _wrap(text: str, width: float, size: float) -> list[str]:
    """Greedy word wrap; a too-wide word like "PTest1" breaks before its trailing digits."""
    lines: list[str] = []
    for word in text.split():
        if lines and _width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
            continue
        if _width(word, size) > width:
            stem = word.rstrip("0123456789")
            if stem and stem != word and stem[-1].isalpha():
                lines.extend([stem, word[len(stem) :]])
                continue
        lines.append(word)
    return lines or [""]


def _cells_of(kind: Kind, row: list) -> _RowCells:
    cols = COLUMNS[kind]
    size = FONT_SIZE[kind]

    def w(col: int) -> float:
        return cols[col + 1] - cols[col] - 2 * PAD_X

    def fit(col: int, text: str) -> list[str]:
        csize = COLUMN_FONT.get((kind, col), size)
        lines = _wrap(text, w(col), csize) if text else []
        for line in lines:
            if _width(line, csize) > w(col) + 0.5:
                raise ValueError(f"{line!r} is wider than column {col} of the {kind} table")
        return lines

    first = row[0]
    if kind == "lectures":
        letter = {"lecture": "L", "practical": "P", "tutorial": "T"}.get(first.activity_kind, "O")
        identity = {
            0: fit(0, first.module),
            1: fit(1, first.offered),
            2: fit(2, first.group),
            3: fit(3, f"{first.language} {letter}"),
            8: fit(8, first.campus),
            9: fit(9, first.study_programme),
        }
        slots = [
            {
                4: fit(4, e.activity),
                5: fit(5, e.weekday),
                6: fit(6, f"{e.start:%H:%M} - {e.end:%H:%M}"),
                7: fit(7, e.venue),
            }
            for e in row
        ]
        return _RowCells(identity, slots)
    if kind == "tests":
        identity = {
            0: fit(0, first.module),
            1: fit(1, first.test),
            2: fit(2, WEEKDAYS[first.date.weekday()]),
            3: fit(3, f"{first.date.day:02d} {first.date:%b %Y}"),
            4: fit(4, f"{first.start:%H:%M} - {first.end:%H:%M}"),
            5: fit(5, first.campus),
        }
        # One venue per line: a venue must not wrap (the reader takes each line as one venue).
        venues = [fit(6, v) for v in first.venues]
        if any(len(v) > 1 for v in venues):
            raise ValueError("a test venue is wider than the Venue column")
        return _RowCells(identity, [{6: v} for v in venues])
    identity = {
        0: fit(0, first.status),
        1: fit(1, first.module),
        2: fit(2, first.paper),
        3: fit(3, first.activity),
        4: fit(4, f"{first.date.day:02d} {first.date:%b %Y}".upper()),
        5: fit(5, f"{first.start:%H:%M}" + (f" - {first.end:%H:%M}" if first.end else "")),
        6: fit(6, first.module_campus),
        7: fit(7, first.exam_campus),
    }
    venue, comments = fit(8, first.venue), fit(9, first.comments)
    slots = [{k: [v] for k, v in ((8, a), (9, b)) if v is not None} for a, b in zip_longest(venue, comments)]
    return _RowCells(identity, slots)


@dataclass
class _Placed:
    top: float
    bottom: float
    lines: list[tuple[int, float, str]]  # (column, baseline, text)


@dataclass
class _Page:
    top: float
    rows: list[_Placed] = field(default_factory=list)

    @property
    def bottom(self) -> float:
        return self.rows[-1].bottom if self.rows else self.top


class _Layout:
    """Places rows on pages, splitting a row's slots across a page break."""

    def __init__(self, kind: Kind, header: list[str] | None = None) -> None:
        self.kind = kind
        self.size = FONT_SIZE[kind]
        self.line_h = round(self.size * 1.16, 2)
        self.page_list: list[_Page] = [_Page(FIRST_TOP)]
        names = header if header is not None else list(HEADERS[kind])
        head = _RowCells({i: HEADER_LINES.get(n, [n]) for i, n in enumerate(names)}, [])
        self._place(head, 0, 0, first=True)

    @property
    def pages(self) -> int:
        return len(self.page_list)

    def _height(self, nlines: int) -> float:
        return PAD_TOP + nlines * self.line_h + PAD_BOTTOM

    def _place(self, row: _RowCells, lo: int, hi: int, *, first: bool) -> None:
        page = self.page_list[-1]
        top = page.bottom
        lines: list[tuple[int, float, str]] = []
        y = top + PAD_TOP
        base = 0.8 * self.size
        if first:
            for col, texts in row.identity.items():
                lines.extend((col, y + base + i * self.line_h, t) for i, t in enumerate(texts))
        for slot in row.slots[lo:hi]:
            for col, texts in slot.items():
                lines.extend((col, y + base + i * self.line_h, t) for i, t in enumerate(texts))
            y += max((len(t) for t in slot.values()), default=1) * self.line_h
        ident = max((len(t) for t in row.identity.values()), default=1) if first else 0
        used = max(ident * self.line_h, y - top - PAD_TOP)
        page.rows.append(_Placed(top, top + PAD_TOP + used + PAD_BOTTOM, lines))

    def add(self, row: _RowCells) -> bool:
        """Place a row (splitting it over pages as needed); False if a single slot cannot fit a page."""
        ident_lines = max((len(t) for t in row.identity.values()), default=1)
        slot_lines = [max((len(t) for t in s.values()), default=1) for s in row.slots] or [0]
        room = lambda: (MAX_BOTTOM - self.page_list[-1].bottom - PAD_TOP - PAD_BOTTOM) / self.line_h  # noqa: E731
        if ident_lines > room() or (row.slots and slot_lines[0] > room()):
            self.page_list.append(_Page(NEXT_TOP))
        lo, first = 0, True
        while True:
            avail = room()
            hi, used = lo, 0
            while hi < len(row.slots) and used + slot_lines[hi] <= avail:
                used += slot_lines[hi]
                hi += 1
            if hi == lo and row.slots and lo < len(row.slots):
                if not self.page_list[-1].rows:
                    return False  # a slot taller than a page
                self.page_list.append(_Page(NEXT_TOP))
                continue
            self._place(row, lo, hi, first=first)
            first, lo = False, hi
            if lo >= len(row.slots):
                return True
            self.page_list.append(_Page(NEXT_TOP))


def _row_key(ev: LectureEvent) -> tuple[str, ...]:
    return (ev.module, ev.offered, ev.group, ev.language, ev.campus, ev.study_programme)


def _groups(timetable: Timetable) -> list[list]:
    """Table rows: one per sitting, or consecutive lecture events of the same group."""
    rows: list[list] = []
    for ev in timetable.events:
        if isinstance(ev, LectureEvent) and rows and _row_key(rows[-1][0]) == _row_key(ev):
            rows[-1].append(ev)
        else:
            rows.append([ev])
    return rows


def render_pdf(timetable: Timetable, *, title: str | None = None, header: list[str] | None = None) -> bytes:
    """Render a timetable in the UP layout. ``title``/``header`` override the real ones (bad-input tests)."""
    kind = timetable.kind
    cols = COLUMNS[kind]
    layout = _Layout(kind, header)
    for row in _groups(timetable):
        if not layout.add(_cells_of(kind, row)):
            raise ValueError("a table row is taller than a page")
    pdf = FPDF(orientation="L", unit="pt", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(0, 0, 0)
    pdf.set_creator("schedgen synthetic UP timetable")
    pdf.set_producer("schedgen")
    pdf.set_fill_color(0, 0, 0)
    size = FONT_SIZE[kind]
    for number, page in enumerate(layout.page_list, start=1):
        pdf.add_page()
        if number == 1:
            pdf.set_font("Helvetica", "B", 20)
            pdf.text(36.0, 55.0, title if title is not None else TITLES[kind])
        top, bottom = page.top, page.bottom
        for x in cols:
            pdf.rect(x, top, RULE, bottom - top + RULE, style="F")
        for y in [top] + [r.bottom for r in page.rows]:
            pdf.rect(cols[0], y, cols[-1] - cols[0] + RULE, RULE, style="F")
        for i, placed in enumerate(page.rows):
            bold = number == 1 and i == 0
            for col, baseline, text in placed.lines:
                pdf.set_font("Helvetica", "B" if bold else "", COLUMN_FONT.get((kind, col), size))
                pdf.text(cols[col] + PAD_X, baseline, text)
    return bytes(pdf.output())
