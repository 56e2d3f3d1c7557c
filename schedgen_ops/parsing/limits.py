"""What one parse may consume, and the running account of what it has consumed.

pdfminer has no caps of its own: a few kilobytes of flate data can inflate to gigabytes, a tiny content
stream can draw a form that draws a form ... ten levels deep, and a page tree may list a million kids.
`Limits` names a cap for each of those; `Budget` is charged by the bounded pdfminer subclasses
(`parsing.bounded`) and the stream decoder (`parsing.decode`) and raises `parse_limit_exceeded` or
`parse_timeout` the moment one is passed. A breach is sticky: once raised, every later charge raises
the same error again, so a pdfminer ``except`` that swallows it cannot let the parse carry on.

The defaults sit far above what UP timetables use (measured: 16 KB of decoded streams, 4,000 content
objects and 3 page-tree nodes for a 2-page file; 385 KB and 75,000 for 40 synthetic pages) and far
below what hurts a 512 MB parser process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from schedgen_ops.parsing.errors import ParseError

MiB = 1024 * 1024
_CHECK_EVERY = 256  # objects between deadline checks


@dataclass(frozen=True, slots=True)
class Limits:
    """Caps of one parse; every one has a test that hits it (tests/parsing/test_limits.py)."""

    max_stream_bytes: int = 16 * MiB  # decoded bytes of any one stream (after every filter)
    max_document_bytes: int = 64 * MiB  # decoded bytes of all streams of the document together
    max_operations: int = 1_000_000  # content objects interpreted + object lookups, whole document
    max_page_items: int = 100_000  # glyphs and paths drawn on one page
    max_page_tree_nodes: int = 1_000  # page-tree entries visited (raised to 4 per allowed page)
    max_depth: int = 100  # nesting of arrays/dicts, of the page tree and of saved graphics states


#: `parse_pdf`: a whole parse, content included.
PARSE_LIMITS = Limits()
#: `quick_check` (the api's pre-accept check): structure only, so far smaller.
CHECK_LIMITS = Limits(max_stream_bytes=4 * MiB, max_document_bytes=16 * MiB, max_operations=200_000)


class Deadline:
    """A monotonic deadline; `check` raises `parse_timeout` once it has passed."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.at = time.monotonic() + timeout_s

    def check(self) -> None:
        if time.monotonic() > self.at:
            raise ParseError("parse_timeout", f"parsing took longer than the {self.timeout_s:g} s limit")


def limit_exceeded(what: str) -> ParseError:
    return ParseError("parse_limit_exceeded", f"the PDF exceeds a parser limit: {what}")


class Budget:
    """The account of one parse against its `Limits` and `Deadline` (one thread; not shared)."""

    def __init__(self, limits: Limits, deadline: Deadline, *, max_pages: int = 0) -> None:
        self.limits = limits
        self.deadline = deadline
        self.max_tree_nodes = max(limits.max_page_tree_nodes, 4 * max_pages)
        self.decoded = 0
        self.operations = 0
        self._next_check = min(_CHECK_EVERY, limits.max_operations + 1)
        self.breach: ParseError | None = None

    def fail(self, error: ParseError) -> ParseError:
        """Record the first breach and return it for raising (later charges raise it again)."""
        if self.breach is None:
            self.breach = error
        return self.breach

    def raise_if_breached(self) -> None:
        if self.breach is not None:
            raise self.breach

    def check_time(self) -> None:
        self.raise_if_breached()
        try:
            self.deadline.check()
        except ParseError as exc:
            raise self.fail(exc) from None

    def operation(self) -> None:
        """Charge one interpreted content object or object lookup."""
        self.operations += 1
        if self.operations >= self._next_check:
            self._checkpoint()

    def _checkpoint(self) -> None:
        if self.operations > self.limits.max_operations:
            raise self.fail(
                limit_exceeded(f"more than {self.limits.max_operations:,} content operations or lookups")
            )
        self._next_check = min(self.operations + _CHECK_EVERY, self.limits.max_operations + 1)
        self.check_time()

    def stream_allowance(self) -> int:
        """Most bytes the next decoded stream may have (its own cap or what the document has left)."""
        self.raise_if_breached()
        return min(self.limits.max_stream_bytes, self.limits.max_document_bytes - self.decoded)

    def too_much_decoded(self) -> ParseError:
        """The error for a stream that passed `stream_allowance`, naming the cap it hit."""
        cap = self.limits.max_stream_bytes
        if self.limits.max_document_bytes - self.decoded < cap:
            return self.fail(
                limit_exceeded(f"its streams decode to more than {self.limits.max_document_bytes // MiB} MiB")
            )
        return self.fail(limit_exceeded(f"a stream decodes to more than {cap // MiB} MiB"))

    def charge_decoded(self, size: int) -> None:
        self.decoded += size

    def depth(self, depth: int, what: str) -> None:
        if depth > self.limits.max_depth:
            raise self.fail(limit_exceeded(f"{what} nested more than {self.limits.max_depth} levels deep"))

    def tree_nodes(self, nodes: int) -> None:
        if nodes > self.max_tree_nodes:
            raise self.fail(limit_exceeded(f"its page tree has more than {self.max_tree_nodes:,} nodes"))

    def page_items(self, items: int) -> None:
        if items > self.limits.max_page_items:
            raise self.fail(
                limit_exceeded(f"a page draws more than {self.limits.max_page_items:,} glyphs and paths")
            )
