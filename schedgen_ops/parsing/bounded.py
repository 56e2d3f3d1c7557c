"""pdfminer's parser, document and interpreter, subclassed to charge a `Budget` as they work.

- `BoundedParser` (the file's structure) and `_ContentParser` (page content) refuse nesting deeper than
  the limit, read 64 KiB at a time instead of 4 KiB (pdfminer's tokenizer appends to a token once per
  buffer, so a 10 MB token cost it ~2,500 growing copies), and skip a run of NUL bytes in one regex
  search (pdfminer skips them one per call inside its token loop: 2 MiB of NULs cost it 4 s of CPU
  without producing a token, out of the deadline's reach). `BoundedParser` also reads lines and
  the file's tail in linear time (pdfminer's ``nextline``/``revreadlines`` are quadratic on a long line).
- `BoundedDocument` charges every object lookup, so a reference cycle (``1 0 obj 1 0 R endobj``, which
  ``resolve1`` follows forever) ends at the operations cap or the deadline.
- `BoundedInterpreter` runs content with its own loop that charges every object it executes, so a flood
  of operators, or forms that draw forms ten levels deep, stops at the operations cap; saved graphics
  states (``q``) are capped at the nesting limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from pdfminer.pdfdocument import PDFDocument
from pdfminer.pdfinterp import PDFContentParser, PDFPageInterpreter, PDFResourceManager
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import PDFStream, stream_value
from pdfminer.psparser import EOL, KWD, PSEOF, PSBaseParser, PSKeyword, keyword_name

from schedgen_ops.parsing.limits import Budget

_BUFSIZ = 64 * 1024
_NOT_BLANK = re.compile(rb"[^\s\x00]")  # pdfminer's tokenizer skips whitespace and NUL between tokens
_METHODS: dict[str, str] = {}  # operator name -> interpreter method (real operators only: at most 3 chars)


def _method_name(name: str) -> str:
    method = _METHODS.get(name)
    if method is None:
        method = "do_" + name.replace("*", "_a").replace('"', "_w").replace("'", "_q")
        if len(name) <= 3:
            _METHODS[name] = method
    return method


def _token_starts() -> dict[bytes, tuple[bytes | None, str]]:
    """First byte of a token -> (what the token starts as, None for that byte; the method reading on).

    pdfminer's ``_parse_main`` as a table: ``%`` comment, ``/`` name, sign or digit number, ``.`` float,
    letter keyword, ``(`` string, ``<``/``>`` hex string or dictionary; any other byte is a keyword alone.
    """
    starts: dict[bytes, tuple[bytes | None, str]] = {
        b"%": (b"%", "_parse_comment"),
        b"/": (b"", "_parse_literal"),
        b".": (None, "_parse_float"),
        b"(": (b"", "_parse_string"),
        b"<": (b"", "_parse_wopen"),
        b">": (b"", "_parse_wclose"),
    }
    for value in range(256):
        byte = bytes([value])
        if byte in (b"-", b"+") or byte.isdigit():
            starts[byte] = (None, "_parse_number")
        elif byte.isalpha():
            starts[byte] = (None, "_parse_keyword")
    return starts


_TOKEN_STARTS = _token_starts()


class _SkipBlanks(PSBaseParser):
    """pdfminer's ``_parse_main`` (its token dispatcher) with one change: the search that finds where the
    next token starts also skips NULs, where pdfminer returns to its loop once per NUL byte."""

    def _parse_main(self, s: bytes, i: int) -> int:
        m = _NOT_BLANK.search(s, i)
        if not m:
            return len(s)
        j = m.start(0)
        c = s[j : j + 1]
        self._curtokenpos = self.bufpos + j
        start = _TOKEN_STARTS.get(c)
        if start is None:
            self._add_token(KWD(c))
            return j + 1
        token, method = start
        self._curtoken = c if token is None else token
        if c == b"(":
            self.paren = 1
        self._parse1 = getattr(self, method)
        return j + 1


class BoundedParser(_SkipBlanks, PDFParser):
    """The structure parser: nesting cap, 64 KiB reads, linear line reading."""

    BUFSIZ = _BUFSIZ

    def __init__(self, fp: BinaryIO, budget: Budget) -> None:
        self.budget = budget
        super().__init__(fp)

    def start_type(self, pos: int, type: str) -> None:
        self.budget.depth(len(self.context) + 1, "arrays and dictionaries")
        super().start_type(pos, type)

    def nextline(self) -> tuple[int, bytes]:
        """pdfminer's ``nextline`` with a bytearray, so a line spanning many buffers costs linear time."""
        self.budget.operation()
        line = bytearray()
        linepos = self.bufpos + self.charpos
        eol = False
        while True:
            self.fillbuf()
            if eol:
                if self.buf[self.charpos : self.charpos + 1] == b"\n":
                    line += b"\n"
                    self.charpos += 1
                break
            match = EOL.search(self.buf, self.charpos)
            if match:
                line += self.buf[self.charpos : match.end(0)]
                self.charpos = match.end(0)
                if line[-1:] != b"\r":
                    break
                eol = True
            else:
                line += self.buf[self.charpos :]
                self.charpos = len(self.buf)
        return linepos, bytes(line)

    def revreadlines(self) -> Iterator[bytes]:
        """The file's lines from the end, like pdfminer's, without re-copying a long line per block."""
        self.fp.seek(0, 2)
        pos = self.fp.tell()
        tail: list[bytes] = []  # pieces of the current (partial) line, last piece first
        while pos > 0:
            self.budget.operation()
            prev, pos = pos, max(0, pos - self.BUFSIZ)
            self.fp.seek(pos)
            block = self.fp.read(prev - pos)
            if not block:
                break
            while True:
                cut = max(block.rfind(b"\r"), block.rfind(b"\n"))
                if cut == -1:
                    tail.append(block)
                    break
                yield block[cut:] + b"".join(reversed(tail))
                tail = []
                block = block[:cut]


class BoundedDocument(PDFDocument):
    """A document whose object lookups are charged to the budget (ends reference cycles)."""

    def __init__(self, parser: BoundedParser, budget: Budget) -> None:
        self.budget = budget
        super().__init__(parser)

    def getobj(self, objid: int) -> object:
        self.budget.operation()
        return super().getobj(objid)


class _ContentParser(_SkipBlanks, PDFContentParser):
    BUFSIZ = _BUFSIZ

    def __init__(self, streams: Sequence[object], budget: Budget) -> None:
        self.budget = budget
        super().__init__(streams)

    def start_type(self, pos: int, type: str) -> None:
        self.budget.depth(len(self.context) + 1, "arrays and dictionaries")
        super().start_type(pos, type)


class BoundedInterpreter(PDFPageInterpreter):
    """The page interpreter with a charged execution loop; the budget travels on the device."""

    def __init__(self, rsrcmgr: PDFResourceManager, device: Any) -> None:
        super().__init__(rsrcmgr, device)
        self.budget: Budget = device.budget

    def do_q(self) -> None:
        self.budget.depth(len(self.gstack) + 1, "saved graphics states (q)")
        super().do_q()

    def execute(self, streams: Sequence[object]) -> None:
        """pdfminer's ``execute`` (circular-form check included), charging each object it executes."""
        budget = self.budget
        parents: set[int] = getattr(self, "parent_stream_ids", set())
        own: set[int] | None = getattr(self, "stream_ids", None)
        if own is not None:
            own.clear()
        valid: list[PDFStream] = []
        for obj in streams:
            stream = stream_value(obj)
            if stream.objid is None or stream.objid in parents:
                continue  # an inline stream, or a form drawing itself
            valid.append(stream)
            if own is not None:
                own.add(stream.objid)
        try:
            parser = _ContentParser(valid, budget)
        except PSEOF:
            return  # an empty page
        while True:
            try:
                _, obj = parser.nextobject()
            except PSEOF:
                break
            budget.operation()
            if not isinstance(obj, PSKeyword):
                self.push(obj)
                continue
            func = getattr(self, _method_name(keyword_name(obj)), None)
            if func is None:
                continue  # an unknown operator (pdfminer ignores them too outside STRICT mode)
            nargs = func.__code__.co_argcount - 1
            if nargs:
                args = self.pop(nargs)
                if len(args) == nargs:
                    func(*args)
            else:
                func()
