"""Low-level PDF access: validation, one-pass opening and a fast char/rule extraction with a deadline.

We drive pdfminer.six (the engine under pdfplumber) directly instead of pdfplumber's page objects:
pdfplumber converts every glyph into a dict of ~20 keys and its table finder re-derives edges, which
doubles the cost on these small files (see docs/PERFORMANCE.md). UP tables are drawn with filled
rectangles, so the rules and the glyph boxes are all we need.

The time limit is cooperative: the device checks a monotonic deadline every few hundred glyphs/paths
and between pages, so it works in any thread (no SIGALRM) and inside an RQ or web worker.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LTChar, LTCurve, LTFigure, LTImage, LTLine, LTPage, LTRect
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfinterp import PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1

from schedgen_ops.parsing.errors import ParseError

_RULE_MAX_THICKNESS = 2.5  # points: thicker filled rectangles are cell backgrounds, not rules
_CHECK_EVERY = 256  # glyphs/paths between deadline checks


@dataclass(frozen=True, slots=True)
class Glyph:
    """One character with its box in top-left page coordinates."""

    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    size: float
    bold: bool


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal or vertical table rule (a thin filled rectangle or a stroked line)."""

    horizontal: bool
    pos: float  # y (top coordinate) for horizontal rules, x for vertical ones
    start: float  # extent along the rule
    end: float


@dataclass(slots=True)
class PageContent:
    """What the table reader needs from one page."""

    number: int
    width: float
    height: float
    glyphs: list[Glyph] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    images: int = 0


class Deadline:
    """A monotonic deadline; `check` raises `parse_timeout` once it has passed."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.at = time.monotonic() + timeout_s

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise ParseError("parse_timeout", f"parsing took longer than the {self.timeout_s:g} s limit")


def too_large(size: int, max_bytes: int) -> ParseError:
    mb = 1024 * 1024
    return ParseError(
        "file_too_large", f"the file is {size / mb:.1f} MB, more than the {max_bytes / mb:g} MB limit"
    )


def check_bytes(data: bytes, *, max_bytes: int) -> None:
    """Reject empty, oversized and non-PDF input before any parsing."""
    if not data:
        raise ParseError("empty_file", "the file is empty")
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes)
    if b"%PDF-" not in data[:1024]:
        raise ParseError("not_a_pdf", "the file is not a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-2048:]:
        raise ParseError("corrupt_pdf", "the PDF is truncated (no %%EOF marker at its end)")


def open_document(data: bytes) -> PDFDocument:
    """Parse the PDF's structure once (xref, trailer, encryption); content streams are read later."""
    try:
        return PDFDocument(PDFParser(io.BytesIO(data)))
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise ParseError("encrypted_pdf", "the PDF is password-protected") from exc
    except Exception as exc:  # pdfminer raises many unrelated types for damaged files
        reason = type(exc).__name__
        raise ParseError("corrupt_pdf", f"the PDF is damaged and cannot be read ({reason})") from exc


def page_count(doc: PDFDocument) -> int:
    """Count pages from the page tree without interpreting any content."""
    try:
        pages = resolve1(doc.catalog.get("Pages"))
        count = resolve1(pages.get("Count")) if isinstance(pages, dict) else None
        if isinstance(count, int) and count >= 0:
            return count
        return sum(1 for _ in PDFPage.create_pages(doc))
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError("corrupt_pdf", f"the PDF's page tree is damaged ({type(exc).__name__})") from exc


class _Device(PDFPageAggregator):
    """pdfminer's aggregator (no layout analysis) that also enforces the deadline while interpreting."""

    def __init__(self, rsrcmgr: PDFResourceManager, deadline: Deadline) -> None:
        super().__init__(rsrcmgr, laparams=None)
        self._deadline = deadline
        self._ops = 0

    def _tick(self) -> None:
        self._ops += 1
        if self._ops % _CHECK_EVERY == 0:
            self._deadline.check()

    def render_char(self, *args: Any, **kwargs: Any) -> float:
        self._tick()
        return float(super().render_char(*args, **kwargs))

    def paint_path(self, *args: Any, **kwargs: Any) -> None:
        self._tick()
        super().paint_path(*args, **kwargs)


def _collect(ltpage: LTPage, number: int) -> PageContent:
    height = ltpage.height
    page = PageContent(number=number, width=ltpage.width, height=height)
    glyphs, rules = page.glyphs, page.rules

    def visit(objs: Any) -> None:
        for obj in objs:
            if isinstance(obj, LTChar):
                font = obj.fontname
                glyphs.append(
                    Glyph(
                        obj.get_text(),
                        obj.x0,
                        obj.x1,
                        height - obj.y1,
                        height - obj.y0,
                        obj.size,
                        "Bold" in font or "bold" in font,
                    )
                )
            elif isinstance(obj, LTRect | LTLine):
                _add_rules(obj, height, rules)
            elif isinstance(obj, LTImage):
                page.images += 1
            elif isinstance(obj, LTFigure):
                visit(obj)
            elif isinstance(obj, LTCurve):
                continue

    visit(ltpage)
    return page


def _add_rules(obj: LTCurve, height: float, rules: list[Rule]) -> None:
    w, h = obj.x1 - obj.x0, obj.y1 - obj.y0
    top, bottom = height - obj.y1, height - obj.y0
    if h <= _RULE_MAX_THICKNESS and w > h:
        rules.append(Rule(True, (top + bottom) / 2, obj.x0, obj.x1))
    elif w <= _RULE_MAX_THICKNESS and h > w:
        rules.append(Rule(False, (obj.x0 + obj.x1) / 2, top, bottom))
    elif isinstance(obj, LTRect) and (obj.stroke or obj.fill):
        # A cell drawn as a box: its four edges are rules.
        rules.append(Rule(True, top, obj.x0, obj.x1))
        rules.append(Rule(True, bottom, obj.x0, obj.x1))
        rules.append(Rule(False, obj.x0, top, bottom))
        rules.append(Rule(False, obj.x1, top, bottom))


def iter_pages(doc: PDFDocument, *, max_pages: int, deadline: Deadline) -> Iterator[PageContent]:
    """Interpret each page's content once, yielding its glyphs and rules."""
    rsrc = PDFResourceManager(caching=True)
    device = _Device(rsrc, deadline)
    interpreter = PDFPageInterpreter(rsrc, device)
    try:
        for number, page in enumerate(PDFPage.create_pages(doc), start=1):
            if number > max_pages:
                raise ParseError("too_many_pages", f"the PDF has more than {max_pages} pages")
            deadline.check()
            interpreter.process_page(page)
            yield _collect(device.get_result(), number)
    except ParseError:
        raise
    except Exception as exc:
        raise ParseError("corrupt_pdf", f"the PDF's content is damaged ({type(exc).__name__})") from exc
