"""The parser's entry points: `quick_check` (cheap upload validation) and `parse_pdf`."""

from __future__ import annotations

import hashlib
import pathlib

from pdfminer.pdfdocument import PDFDocument

from schedgen_ops.parsing.errors import ParseError
from schedgen_ops.parsing.model import SourceInfo, Timetable
from schedgen_ops.parsing.pdfread import (
    Deadline,
    check_bytes,
    iter_pages,
    open_document,
    page_count,
    too_large,
)
from schedgen_ops.parsing.readers import check_header, detect_kind, read_table
from schedgen_ops.parsing.table import TableBuilder

MAX_BYTES = 10 * 1024 * 1024
MAX_PAGES = 100
TIMEOUT_S = 60.0


def _read_source(source: bytes | pathlib.Path, max_bytes: int) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    size = source.stat().st_size  # a missing path is the caller's error (OSError), not bad input
    if size > max_bytes:
        raise too_large(size, max_bytes)
    return source.read_bytes()


def quick_check(data: bytes, *, max_bytes: int = MAX_BYTES, max_pages: int = MAX_PAGES) -> int:
    """Validate an upload without interpreting page content; return its page count.

    Checks, in order: empty, size, PDF magic, truncation, structure/encryption, page count. Raises the
    same `ParseError` codes as `parse_pdf`.
    """
    return _open_checked(data, max_bytes=max_bytes, max_pages=max_pages)[1]


def _open_checked(data: bytes, *, max_bytes: int, max_pages: int) -> tuple[PDFDocument, int]:
    check_bytes(data, max_bytes=max_bytes)
    doc = open_document(data)
    pages = page_count(doc)
    if pages > max_pages:
        raise ParseError("too_many_pages", f"the PDF has {pages} pages, more than the {max_pages} page limit")
    if pages == 0:
        raise ParseError("corrupt_pdf", "the PDF has no pages")
    return doc, pages


def parse_pdf(
    source: bytes | pathlib.Path,
    *,
    filename: str | None = None,
    max_bytes: int = MAX_BYTES,
    max_pages: int = MAX_PAGES,
    timeout_s: float = TIMEOUT_S,
) -> Timetable:
    """Parse a UP timetable PDF (bytes or a path), opening it once. Raises `ParseError`."""
    deadline = Deadline(timeout_s)
    if filename is None and isinstance(source, pathlib.Path):
        filename = source.name
    data = _read_source(source, max_bytes)
    doc, pages = _open_checked(data, max_bytes=max_bytes, max_pages=max_pages)  # the one open
    builder = TableBuilder()
    kind = None
    for page in iter_pages(doc, max_pages=max_pages, deadline=deadline):
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
    deadline.check()
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
