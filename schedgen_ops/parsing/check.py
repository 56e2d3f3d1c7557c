"""The cheap upload check: size, magic, truncation, structure, encryption and page count; no content.

Kept apart from `parsing.api` so the api's pre-accept sandbox loads pdfminer's structure parser and
nothing else (no pydantic models, no table reader): a smaller process under a smaller memory ceiling.
"""

from __future__ import annotations

from pdfminer.pdfdocument import PDFDocument

from schedgen_ops.parsing.alarm import hard_deadline
from schedgen_ops.parsing.decode import budget_active
from schedgen_ops.parsing.errors import ParseError
from schedgen_ops.parsing.limits import CHECK_LIMITS, Budget, Deadline, Limits
from schedgen_ops.parsing.pdfread import check_bytes, open_document, page_count

MAX_BYTES = 10 * 1024 * 1024
MAX_PAGES = 100
CHECK_TIMEOUT_S = 10.0


def quick_check(
    data: bytes,
    *,
    max_bytes: int = MAX_BYTES,
    max_pages: int = MAX_PAGES,
    timeout_s: float = CHECK_TIMEOUT_S,
    limits: Limits = CHECK_LIMITS,
) -> int:
    """Validate an upload without interpreting page content; return its page count.

    Checks, in order: empty, size, PDF magic, truncation, structure/encryption, page count, all under
    ``limits`` and ``timeout_s``. Raises the same `ParseError` codes as `parse_pdf`.
    """
    budget = Budget(limits, Deadline(timeout_s), max_pages=max_pages)
    with budget_active(budget), hard_deadline(budget):
        return open_checked(data, budget, max_bytes=max_bytes, max_pages=max_pages)[1]


def open_checked(data: bytes, budget: Budget, *, max_bytes: int, max_pages: int) -> tuple[PDFDocument, int]:
    """Check the bytes, open the structure once and count pages (the caller has the budget active)."""
    check_bytes(data, max_bytes=max_bytes)
    doc = open_document(data, budget)
    return doc, checked_pages(doc, budget, max_pages=max_pages)


def checked_pages(doc: PDFDocument, budget: Budget, *, max_pages: int) -> int:
    """The page count, refusing none and more than ``max_pages``."""
    pages = page_count(doc, budget, max_pages=max_pages)
    if pages > max_pages:
        raise ParseError("too_many_pages", f"the PDF has {pages} pages, more than the {max_pages} page limit")
    if pages == 0:
        raise ParseError("corrupt_pdf", "the PDF has no pages")
    budget.raise_if_breached()
    return pages
