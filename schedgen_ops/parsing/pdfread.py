"""Low-level PDF access: validation, one-pass opening and a fast char/rule extraction with a deadline.

We drive pdfminer.six (the engine under pdfplumber) directly instead of pdfplumber's page objects:
pdfplumber converts every glyph into a dict of ~20 keys and its table finder re-derives edges, which
doubles the cost on these small files (see docs/PERFORMANCE.md). UP tables are drawn with filled
rectangles, so the rules and the glyph boxes are all we need.

Every step is charged to a `Budget` (parsing/limits.py): the structure parser, the object lookups and
the content interpreter are the bounded subclasses of parsing/bounded.py, the page tree is walked by
parsing/pagetree.py, and the device here counts what each page draws. The deadline is cooperative (checked
every few hundred objects, glyphs or paths, and between pages), so it works in any thread.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pdfminer.converter import PDFPageAggregator
from pdfminer.layout import LTChar, LTCurve, LTFigure, LTImage, LTLine, LTPage, LTRect
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfinterp import PDFResourceManager
from pdfminer.pdftypes import resolve1

from schedgen_ops.parsing import decode as _decode  # installs the bounded stream decoder
from schedgen_ops.parsing.bounded import BoundedDocument, BoundedInterpreter, BoundedParser
from schedgen_ops.parsing.errors import ParseError
from schedgen_ops.parsing.limits import PARSE_LIMITS, Budget, Deadline, limit_exceeded
from schedgen_ops.parsing.pagetree import walk_pages

__all__ = ["Budget", "Deadline", "Glyph", "PageContent", "Rule", "check_bytes", "iter_pages", "open_document"]

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


def failure(exc: Exception, budget: Budget, what: str) -> ParseError:
    """The `ParseError` for an exception out of pdfminer: a breach, memory or nesting, else corrupt."""
    if budget.breach is not None:
        return budget.breach
    if isinstance(exc, MemoryError):
        return budget.fail(limit_exceeded("parsing it needs more memory than a parse may use"))
    if isinstance(exc, RecursionError):
        return budget.fail(limit_exceeded("its objects or forms are nested too deeply"))
    return ParseError("corrupt_pdf", f"{what} ({type(exc).__name__})")


@contextmanager
def reading(budget: Budget, damaged: str) -> Iterator[None]:
    """Let one error out of reading a PDF: the budget's breach when one tripped (pdfminer may catch and
    wrap it), a `ParseError` as it is, and anything else pdfminer raises as `failure` saying ``damaged``."""
    try:
        yield
    except ParseError as exc:
        if budget.breach is None or budget.breach is exc:
            raise
        raise budget.breach from exc
    except Exception as exc:  # pdfminer raises many unrelated types for damaged files
        raise failure(exc, budget, damaged) from exc


def open_document(data: bytes, budget: Budget | None = None) -> PDFDocument:
    """Parse the PDF's structure once (xref, trailer, encryption); content streams are read later.

    ``budget`` defaults to the one active in this context (`decode.budget_active`), else a fresh one
    with the parse limits.
    """
    budget = budget or _decode.active_budget() or Budget(PARSE_LIMITS, Deadline(60.0))
    try:
        return BoundedDocument(BoundedParser(io.BytesIO(data), budget), budget)
    except (PDFPasswordIncorrect, PDFEncryptionError) as exc:
        raise ParseError("encrypted_pdf", "the PDF is password-protected") from exc
    except ParseError as exc:
        if budget.breach is None or budget.breach is exc:
            raise
        raise budget.breach from exc
    except Exception as exc:  # pdfminer raises many unrelated types for damaged files
        raise failure(exc, budget, "the PDF is damaged and cannot be read") from exc


def page_count(doc: PDFDocument, budget: Budget, *, max_pages: int) -> int:
    """The page count from ``/Count``, or by walking the tree (bounded; stops past ``max_pages``)."""
    with reading(budget, "the PDF's page tree is damaged"):
        pages = resolve1(doc.catalog.get("Pages"))
        count = resolve1(pages.get("Count")) if isinstance(pages, dict) else None
        if isinstance(count, int) and count >= 0:
            return count
        found = 0
        for _ in walk_pages(doc, budget):
            found += 1
            if found > max_pages:
                break
        return found


class _Device(PDFPageAggregator):
    """pdfminer's aggregator (no layout analysis) that counts what a page draws against the budget."""

    def __init__(self, rsrcmgr: PDFResourceManager, budget: Budget) -> None:
        super().__init__(rsrcmgr, laparams=None)
        self.budget = budget  # read by BoundedInterpreter (and each form's sub-interpreter)
        self.items = 0

    def _tick(self) -> None:
        self.items += 1
        if self.items % _CHECK_EVERY == 0:
            self.budget.page_items(self.items)
            self.budget.check_time()

    def render_char(self, *args: Any, **kwargs: Any) -> float:
        self._tick()
        return float(super().render_char(*args, **kwargs))

    def paint_path(self, *args: Any, **kwargs: Any) -> None:
        self._tick()
        super().paint_path(*args, **kwargs)

    def begin_figure(self, *args: Any, **kwargs: Any) -> None:
        self._tick()  # each form drawn is an LTFigure kept for the page
        super().begin_figure(*args, **kwargs)


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


def iter_pages(
    doc: PDFDocument, *, max_pages: int, budget: Budget | None = None, deadline: Deadline | None = None
) -> Iterator[PageContent]:
    """Interpret each page's content once, yielding its glyphs and rules.

    Without ``budget``: the one the document was opened with, or the parse limits with ``deadline``.
    """
    if budget is None:
        opened = getattr(doc, "budget", None)
        budget = Budget(PARSE_LIMITS, deadline or Deadline(60.0)) if opened is None or deadline else opened
    rsrc = PDFResourceManager(caching=True)
    device = _Device(rsrc, budget)
    interpreter = BoundedInterpreter(rsrc, device)
    with reading(budget, "the PDF's content is damaged"):
        for number, page in enumerate(walk_pages(doc, budget), start=1):
            if number > max_pages:
                raise ParseError("too_many_pages", f"the PDF has more than {max_pages} pages")
            budget.check_time()
            device.items = 0
            interpreter.process_page(page)
            budget.page_items(device.items)
            budget.raise_if_breached()  # in case pdfminer swallowed it
            yield _collect(device.get_result(), number)
