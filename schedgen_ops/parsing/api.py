"""The parser's entry points: `quick_check` (cheap upload validation) and `parse_pdf`.

Both run in-process under the caps of `parsing.limits` (decoded bytes, operations, page tree, nesting,
deadline); `parsing.sandbox` runs them in a child process with a hard memory and CPU ceiling on top.
"""

from __future__ import annotations

import hashlib
import pathlib

from schedgen_ops.parsing.alarm import hard_deadline
from schedgen_ops.parsing.check import MAX_BYTES, MAX_PAGES, checked_pages, quick_check
from schedgen_ops.parsing.decode import budget_active
from schedgen_ops.parsing.errors import ParseError
from schedgen_ops.parsing.limits import PARSE_LIMITS, Budget, Deadline, Limits
from schedgen_ops.parsing.model import SourceInfo, Timetable
from schedgen_ops.parsing.pdfread import check_bytes, iter_pages, open_document, too_large
from schedgen_ops.parsing.readers import check_header, detect_kind, read_table
from schedgen_ops.parsing.table import TableBuilder

__all__ = ["MAX_BYTES", "MAX_PAGES", "TIMEOUT_S", "parse_pdf", "quick_check"]

TIMEOUT_S = 60.0


def _read_source(source: bytes | pathlib.Path, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    size = source.stat().st_size  # a missing path is the caller's error (OSError), not bad input
    if size > max_bytes:
        raise too_large(size, max_bytes)
    return source.read_bytes()


def parse_pdf(
    source: bytes | pathlib.Path,
    *,
    filename: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_pages: int = MAX_PAGES,
    timeout_s: float = TIMEOUT_S,
    limits: Limits = PARSE_LIMITS,
) -> Timetable:
    """Parse a UP timetable PDF (bytes or a path), opening it once. Raises `ParseError`."""
    budget = Budget(limits, Deadline(timeout_s), max_pages=max_pages)
    if filename is None and isinstance(source, pathlib.Path):
        filename = source.name
    data = _read_source(source, max_bytes)
    with budget_active(budget), hard_deadline(budget):
        return _parse(data, budget, filename=filename, max_bytes=max_bytes, max_pages=max_pages)


def _parse(data: bytes, budget: Budget, *, filename: str | None, max_bytes: int, max_pages: int) -> Timetable:
    check_bytes(data, max_bytes=max_bytes)
    doc = open_document(data)  # the one open (charged to the active budget)
    pages = checked_pages(doc, budget, max_pages=max_pages)
    builder = TableBuilder()
    kind = None
    for page in iter_pages(doc, max_pages=max_pages, budget=budget):
        if page.number == 1:
            if not page.glyphs:
                what = "images only" if page.images else "no text"
                raise ParseError("image_only_pdf", f"the PDF's first page has {what} (scanned or printed?)")
            table = builder.first_page(page)
            kind = detect_kind(table.title)
            check_header(kind, table.header)
        else:
            builder.add_page(page)
    if builder.table is None or kind is None:
        raise ParseError("corrupt_pdf", "the PDF has no readable pages")
    budget.check_time()
    events, warnings = read_table(kind, builder.table)
    if not events:
        warnings.append(f"the {kind} table has no rows")
    return Timetable(
        kind=kind,
        events=events,
        warnings=warnings,
        source=SourceInfo(
            filename=filename,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            pages=pages,
            title=builder.table.title,
        ),
    )
