"""Bounded stream decoding: pdfminer's `PDFStream.decode` with a cap on the bytes every filter produces.

pdfminer inflates with one ``zlib.decompress`` call (a 1.5 MB bomb becomes 1.5 GB before anyone can look),
and its fallback for damaged flate data is quadratic. pypdf, xpdf and pdf-lib all cap decoded output; this
module does the same for pdfminer. `PDFStream.decode` is replaced once, process-wide, by `_decode`: with no
`Budget` active (pdfplumber or pdfminer used directly) it is pdfminer's own decode; inside `budget_active`
every filter stops at the stream's allowance and raises `parse_limit_exceeded`.

Streams are created deep inside pdfminer (xref streams, object streams, fonts, content), so a method swap
is the one place that sees them all; everything else in `parsing.bounded` is plain subclassing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from io import BytesIO
from typing import Any

from pdfminer import pdftypes
from pdfminer.ascii85 import ascii85decode, asciihexdecode
from pdfminer.lzw import LZWDecoder
from pdfminer.pdfexceptions import PDFNotImplementedError
from pdfminer.pdftypes import PDFStream
from pdfminer.psparser import LIT
from pdfminer.utils import apply_png_predictor

from schedgen_ops.parsing.limits import Budget

_ACTIVE: ContextVar[Budget | None] = ContextVar("schedgen_parse_budget", default=None)
_ORIGINAL: Callable[[PDFStream], None] = PDFStream.decode
_INFLATE_STEP = 64 * 1024  # compressed bytes per zlib call: one deadline check per step

_FLATE = (LIT("FlateDecode"), LIT("Fl"))
_LZW = (LIT("LZWDecode"), LIT("LZW"))
_A85 = (LIT("ASCII85Decode"), LIT("A85"))
_AHX = (LIT("ASCIIHexDecode"), LIT("AHx"))
_RUNLENGTH = (LIT("RunLengthDecode"), LIT("RL"))
_CCITT = (LIT("CCITTFaxDecode"), LIT("CCF"))
#: Image codecs: text extraction never needs their pixels, so they stay encoded (pdfminer does the same
#: for DCT/JBIG2/JPX). CCITT joins them: pdfminer's decoder ignores /Rows and grows without a bound.
_PASSTHROUGH = (LIT("DCTDecode"), LIT("DCT"), LIT("JBIG2Decode"), LIT("JPXDecode"), *_CCITT)


@contextmanager
def budget_active(budget: Budget) -> Iterator[Budget]:
    """Charge every stream decoded in this context (this thread) to ``budget``."""
    token = _ACTIVE.set(budget)
    try:
        yield budget
    finally:
        _ACTIVE.reset(token)


def active_budget() -> Budget | None:
    """The budget of the parse running in this context, if any."""
    return _ACTIVE.get()


def _decode(self: PDFStream) -> None:
    budget = _ACTIVE.get()
    if budget is None:
        _ORIGINAL(self)
        return
    assert self.data is None and self.rawdata is not None
    data = self.rawdata
    if self.decipher:
        assert self.objid is not None and self.genno is not None
        data = self.decipher(self.objid, self.genno, data, self.attrs)
    for name, params in self.get_filters():
        cap = budget.stream_allowance()
        data = _apply(name, params, data, cap, budget)
        if len(data) > cap:
            raise budget.too_much_decoded()
    if len(data) > budget.stream_allowance():  # unfiltered data counts too
        raise budget.too_much_decoded()
    budget.charge_decoded(len(data))
    self.data = data
    self.rawdata = None


def _apply(name: Any, params: Any, data: bytes, cap: int, budget: Budget) -> bytes:
    if name in _FLATE:
        data = inflate(data, cap, budget)
    elif name in _LZW:
        data = _lzw(data, cap, budget)
    elif name in _A85:
        if len(data) + 3 * data.count(b"z") > cap:  # "z" stands for 4 zero bytes: at most 4x
            raise budget.too_much_decoded()
        data = ascii85decode(data)
    elif name in _AHX:
        data = asciihexdecode(data)
    elif name in _RUNLENGTH:
        data = run_length(data, cap, budget)
    elif name in _PASSTHROUGH:
        return data  # images: pdfminer hands them on undecoded
    elif name == LIT("Crypt"):
        raise PDFNotImplementedError("/Crypt filter is unsupported")
    else:
        raise PDFNotImplementedError(f"Unsupported filter: {name!r}")
    return _predict(params, data)


def inflate(data: bytes, cap: int, budget: Budget) -> bytes:
    """zlib-inflate at most ``cap + 1`` bytes; a damaged stream yields what precedes the damage."""
    inflater = zlib.decompressobj()
    out = bytearray()
    for start in range(0, len(data), _INFLATE_STEP):
        chunk = data[start : start + _INFLATE_STEP]
        saved = inflater.copy()
        try:
            out += inflater.decompress(chunk, cap - len(out) + 1)
        except zlib.error:
            out += _salvage(saved, chunk, cap - len(out) + 1)
            break
        if len(out) > cap:
            raise budget.too_much_decoded()
        budget.check_time()
        if inflater.eof:
            break
    return bytes(out)


def _salvage(inflater: Any, chunk: bytes, room: int) -> bytes:
    """Byte by byte from the last good state, like pdfminer's recovery of a bad checksum (linear)."""
    out = bytearray()
    for i in range(len(chunk)):
        try:
            out += inflater.decompress(chunk[i : i + 1], room - len(out))
        except zlib.error:
            break
        if len(out) >= room:
            break
    return bytes(out)


def _lzw(data: bytes, cap: int, budget: Budget) -> bytes:
    out = bytearray()
    for piece in LZWDecoder(BytesIO(data)).run():
        out += piece
        if len(out) > cap:
            raise budget.too_much_decoded()
    return bytes(out)


def run_length(data: bytes, cap: int, budget: Budget) -> bytes:
    """RunLengthDecode (PDF 32000 7.4.5) into a bytearray, stopping past ``cap``."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        length = data[i]
        if length == 128:
            break
        if length < 128:
            out += data[i + 1 : i + 2 + length]
            i += 2 + length
        else:
            out += data[i + 1 : i + 2] * (257 - length)
            i += 2
        if len(out) > cap:
            raise budget.too_much_decoded()
    return bytes(out)


def _predict(params: Any, data: bytes) -> bytes:
    if not isinstance(params, dict) or "Predictor" not in params:
        return data
    predictor = pdftypes.int_value(params["Predictor"])
    if predictor == 1:
        return data
    colors = pdftypes.int_value(params.get("Colors", 1))
    columns = pdftypes.int_value(params.get("Columns", 1))
    bits = pdftypes.int_value(params.get("BitsPerComponent", 8))
    if predictor >= 10:
        return bytes(apply_png_predictor(predictor, colors, columns, bits, data))
    tiff = getattr(pdftypes, "apply_tiff_predictor", None)  # pdfminer.six >= 20240706
    if predictor == 2 and tiff is not None:
        return bytes(tiff(colors, columns, bits, data))
    raise PDFNotImplementedError(f"Unsupported predictor: {predictor!r}")


PDFStream.decode = _decode  # type: ignore[method-assign]
