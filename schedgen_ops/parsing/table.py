"""Rebuild a UP timetable's table from rules and glyphs: title, header, and rows spanning pages.

Rows are cut at horizontal rules and columns at vertical rules; each glyph lands in the cell that holds
its centre. A cell keeps its text lines with their position (page, top) so that readers can pair the
n-th lines of multi-line cells by position rather than by count, and so that a continuation row merged
across a page break keeps its order.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from schedgen_ops.parsing.pdfread import Glyph, PageContent, Rule

_CLUSTER_TOL = 1.5  # points: rules closer than this are the same rule (e.g. both edges of a thin rect)
_MIN_CELL = 3.0  # points: gaps narrower than this between rules are not cells

Key = tuple[int, float]  # (page number, top) of a text line


@dataclass(slots=True)
class Line:
    key: Key
    text: str


@dataclass(slots=True)
class Row:
    page: int
    cells: list[list[Line]]

    def text(self, col: int, sep: str = " ") -> str:
        return sep.join(line.text for line in self.cells[col]).strip()

    def is_empty(self) -> bool:
        return not any(self.cells)


@dataclass(slots=True)
class Table:
    title: str
    header: list[str] | None
    rows: list[Row] = field(default_factory=list)


def _cluster(values: Iterable[float]) -> list[float]:
    out: list[float] = []
    for v in sorted(values):
        if out and v - out[-1] <= _CLUSTER_TOL:
            continue
        out.append(v)
    # Drop boundaries that would make sliver cells (double-drawn rules a little apart).
    merged: list[float] = []
    for v in out:
        if merged and v - merged[-1] < _MIN_CELL:
            continue
        merged.append(v)
    return merged


def _lines_of(glyphs: list[Glyph], page: int) -> list[Line]:
    """Group glyphs into text lines (by top), words separated by explicit spaces or visible gaps."""
    if not glyphs:
        return []
    glyphs = sorted(glyphs, key=lambda g: (round(g.top), g.x0))
    groups: list[list[Glyph]] = []
    for g in glyphs:
        if groups and abs(g.top - groups[-1][0].top) <= 0.4 * max(g.size, 1.0):
            groups[-1].append(g)
        else:
            groups.append([g])
    lines: list[Line] = []
    for group in groups:
        group.sort(key=lambda g: g.x0)
        parts: list[str] = []
        prev: Glyph | None = None
        for g in group:
            if prev is not None and g.x0 - prev.x1 > 0.15 * g.size and parts and parts[-1] != " ":
                parts.append(" ")
            parts.append(g.text)
            prev = g
        text = re.sub(r"\s+", " ", "".join(parts)).strip()
        if text:
            lines.append(Line((page, min(x.top for x in group)), text))
    return lines


def _title_of(glyphs: list[Glyph], page: int) -> str:
    """The page title: the line(s) set in the largest font."""
    if not glyphs:
        return ""
    biggest = max(g.size for g in glyphs)
    big = [g for g in glyphs if g.size >= biggest - 0.5]
    return " ".join(line.text for line in _lines_of(big, page))


def _grid(rules: list[Rule]) -> tuple[list[float], list[float]] | None:
    xs = _cluster(r.pos for r in rules if not r.horizontal)
    ys = _cluster(r.pos for r in rules if r.horizontal)
    if len(xs) < 2 or len(ys) < 2:
        return None
    return xs, ys


def read_page(page: PageContent) -> tuple[list[Row], list[Glyph], float | None]:
    """Split one page into table rows, the glyphs outside the table (title, footers) and the table top."""
    grid = _grid(page.rules)
    if grid is None:
        return [], list(page.glyphs), None
    xs, ys = grid
    ncols, nrows = len(xs) - 1, len(ys) - 1
    buckets: list[list[list[Glyph]]] = [[[] for _ in range(ncols)] for _ in range(nrows)]
    outside: list[Glyph] = []
    for g in page.glyphs:
        cx, cy = (g.x0 + g.x1) / 2, (g.top + g.bottom) / 2
        col = bisect.bisect_right(xs, cx) - 1
        row = bisect.bisect_right(ys, cy) - 1
        if 0 <= col < ncols and 0 <= row < nrows:
            buckets[row][col].append(g)
        else:
            outside.append(g)
    rows = [Row(page.number, [_lines_of(cell, page.number) for cell in cells]) for cells in buckets]
    return [r for r in rows if not r.is_empty()], outside, ys[0]


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


class TableBuilder:
    """Feed pages in order; the first page gives the title and header."""

    def __init__(self) -> None:
        self.table: Table | None = None
        self._header_norm: list[str] | None = None

    def first_page(self, page: PageContent) -> Table:
        rows, outside, table_top = read_page(page)
        above = outside if table_top is None else [g for g in outside if g.bottom <= table_top + 1]
        title = _title_of(above or outside, page.number)
        header = [" ".join(x.text for x in cell) for cell in rows[0].cells] if rows else None
        self.table = Table(title=title, header=header, rows=rows[1:] if rows else [])
        self._header_norm = [normalise(h) for h in header] if header else None
        return self.table

    def add_page(self, page: PageContent) -> None:
        assert self.table is not None
        rows, _, _ = read_page(page)
        for row in rows:
            # Some exports repeat the header on every page: skip it.
            texts = [normalise(row.text(i)) for i in range(len(row.cells))]
            if self._header_norm and texts == self._header_norm:
                continue
            self.table.rows.append(row)
