"""A corpus of hostile PDFs, built in memory by the tests (nothing binary is committed).

Each `Case` says what it attacks, where it is stopped (``stage``: the api's pre-accept ``check`` or the
worker's ``parse``) and with which error code. Bombs are deflate streams assembled block by block
(one compressed block of zeros, repeated, then a valid Adler-32), so a 1 GiB bomb costs milliseconds
to build and is a well-formed zlib stream a real inflater would expand in full.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    code: str  # the error code the parser must give
    stage: str  # "check": refused by quick_check (the upload); "parse": accepted, the job fails
    sandbox_only: bool = False  # bounded only by the sandbox's hard ceilings: never parse in-process


# -- building blocks ---------------------------------------------------------------------------------


@cache
def zero_bomb(size: int = GiB) -> bytes:
    """A valid zlib stream that inflates to ``size`` zero bytes (~1000:1)."""
    block = 1 * MiB
    assert size % block == 0
    comp = zlib.compressobj(9)
    head = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(bytes(block)) + comp.flush(zlib.Z_FULL_FLUSH)  # same bytes for every block
    adler = ((size % 65521) << 16) | 1  # Adler-32 of n zeros: a = 1, b = n mod 65521
    return head + again * (size // block - 1) + b"\x03\x00" + struct.pack(">I", adler)


def stream(entries: bytes, data: bytes) -> bytes:
    return b"<< %s /Length %d >>\nstream\n" % (entries, len(data)) + data + b"\nendstream"


def build(objects: list[bytes], *, root: int = 1) -> bytes:
    """A PDF with a classic xref table; object n is ``objects[n - 1]``."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, root, xref)
    return bytes(out)


def build_with_xref_stream(objects: list[bytes], *, xref_data: bytes | None = None, packed: int = 0) -> bytes:
    """A PDF whose xref is a stream (PDF 1.5). Objects after the first ``len - packed`` live in object
    1 (an object stream the caller provides); ``xref_data`` replaces the xref's real (flate) data."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    direct = len(objects) - packed
    offsets = []
    for number, body in enumerate(objects[:direct], start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref_number = direct + packed + 1
    rows = [b"\x00\x00\x00\x00\x00\xff\xff"]
    rows += [b"\x01" + struct.pack(">IH", offset, 0) for offset in offsets]
    rows += [b"\x02" + struct.pack(">IH", 1, index) for index in range(packed)]
    xref_offset = len(out)
    rows.append(b"\x01" + struct.pack(">IH", xref_offset, 0))
    data = xref_data if xref_data is not None else zlib.compress(b"".join(rows))
    entries = b"/Type /XRef /Size %d /W [1 4 2] /Root %d 0 R /Filter /FlateDecode" % (
        xref_number + 1,
        direct + 1 if packed else 1,
    )
    out += b"%d 0 obj\n" % xref_number + stream(entries, data) + b"\nendobj\n"
    out += b"startxref\n%d\n%%%%EOF\n" % xref_offset
    return bytes(out)


def one_page(content: bytes, *, filters: bytes = b"/Filter /FlateDecode", resources: bytes = b"",
             extra: tuple[bytes, ...] = (), count: bytes = b"/Count 1") -> bytes:  # fmt: skip
    """Catalog (1), Pages (2), Page (3) with content stream 4, then ``extra`` objects from 5 on."""
    return build(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] %s >>" % count,
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Contents 4 0 R /Resources << %s >> >>"
            % resources,
            stream(filters, content),
            *extra,
        ]
    )


HELVETICA = b"/Font << /F1 5 0 R >>"
HELVETICA_OBJ = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def text_page(title: bytes = b"Lectures") -> bytes:
    """Page content that draws ``title`` large (what the parser reads as the timetable's title)."""
    return b"BT /F1 20 Tf 36 540 Td (" + title + b") Tj ET\n" + b"0 0 m 10 10 l S\n" * 50


# -- the cases ---------------------------------------------------------------------------------------


def xref_stream_bomb() -> bytes:
    """The cross-reference stream itself inflates to 1 GiB."""
    return build_with_xref_stream(
        [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"],
        xref_data=zero_bomb(),
    )


def object_stream_bomb() -> bytes:
    """The catalog lives in an object stream that inflates to 1 GiB."""
    objstm = stream(b"/Type /ObjStm /N 1 /First 4 /Filter /FlateDecode", zero_bomb())
    return build_with_xref_stream([objstm, b"<< /Type /Catalog /Pages 3 0 R >>"], packed=1)


def content_bomb() -> bytes:
    """Page content that inflates to 1 GiB (quick_check never reads content: the worker meets it)."""
    return one_page(zero_bomb())


def double_flate_bomb() -> bytes:
    """Flate inside flate: a few kilobytes that inflate to 1 MB, then to 1 GiB."""
    return one_page(zlib.compress(zero_bomb(), 9), filters=b"/Filter [/FlateDecode /FlateDecode]")


def operator_flood() -> bytes:
    """Four million operators in 8 MB of content (under the byte caps, over the operations cap)."""
    return one_page(zlib.compress(b"q Q\n" * 2_000_000, 9))


def form_flood() -> bytes:
    """Ten levels of forms, each drawing the next ten times: 10^10 form invocations from 2 KB."""
    levels = 10
    objects = []
    for level in range(levels):
        number = 5 + level
        body = b"/X Do\n" * 10 if level < levels - 1 else b"0 0 m 1 1 l S\n"
        resources = b"/XObject << /X %d 0 R >>" % (number + 1) if level < levels - 1 else b""
        objects.append(
            stream(b"/Type /XObject /Subtype /Form /BBox [0 0 10 10] /Resources << %s >>" % resources, body)
        )
    return one_page(b"/X Do\n" * 10, filters=b"", resources=b"/XObject << /X 5 0 R >>", extra=tuple(objects))


def _page_tree_flood(count: bytes) -> bytes:
    kids = b"5 0 R " * 5_000  # five thousand kids, all the same empty /Pages node
    return build(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R " + kids + b"] " + count + b" >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Contents 4 0 R >>",
            stream(b"", b""),
            b"<< /Type /Pages /Kids [] >>",
        ]
    )


def page_tree_flood_without_count() -> bytes:
    return _page_tree_flood(b"")


def page_tree_flood_lying_count() -> bytes:
    """/Count says 1, so the upload check believes it; the worker's walk meets the kids."""
    return _page_tree_flood(b"/Count 1")


def deep_page_tree() -> bytes:
    """A chain of 300 /Pages nodes (pdfminer recurses once per level)."""
    depth = 300
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    for level in range(depth):
        objects.append(b"<< /Type /Pages /Kids [%d 0 R] /Count 1 >>" % (level + 3))
    objects.append(b"<< /Type /Page /MediaBox [0 0 842 595] >>")
    return build(objects)


def deep_structure() -> bytes:
    """The catalog holds an array nested 50,000 levels deep."""
    return build([b"<< /Type /Catalog /Pages 2 0 R /Deep " + b"[" * 50_000 + b"]" * 50_000 + b" >>",
                  b"<< /Type /Pages /Kids [] /Count 0 >>"])  # fmt: skip


def deep_content() -> bytes:
    """Page content with an array nested 200,000 levels deep."""
    return one_page(zlib.compress(b"[" * 200_000 + b"]" * 200_000 + b" TJ\n"))


def reference_cycle() -> bytes:
    """/Pages is object 2, and object 2 is a reference to itself: ``resolve1`` loops forever."""
    return build([b"<< /Type /Catalog /Pages 2 0 R >>", b"2 0 R"])


def unterminated_stream() -> bytes:
    """A content stream whose /Length runs past the end of the file and that never says ``endstream``."""
    return build(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Contents 4 0 R >>",
            b"<< /Length 99999999 >>\nstream\n" + b"A" * (2 * MiB),
        ]
    )


def truncated_flate_content() -> bytes:
    """Page content whose flate data is cut off mid-stream: the title survives, the rest is lost."""
    data = zlib.compress(text_page() + b"0 0 m 100 100 l S\n" * 2_000, 9)
    return one_page(data[: len(data) // 2], resources=HELVETICA, extra=(HELVETICA_OBJ,))


def _truetype(cmap_subtable: bytes) -> bytes:
    cmap = struct.pack(">HHHHI", 0, 1, 3, 1, 12) + cmap_subtable
    header = struct.pack(">IHHHH", 0x00010000, 1, 16, 0, 0)
    return header + struct.pack(">4sIII", b"cmap", 0, 12 + 16, len(cmap)) + cmap


def _cid_font_page(font_file: bytes) -> bytes:
    font = b"<< /Type /Font /Subtype /Type0 /BaseFont /Bomb /Encoding /Identity-H /DescendantFonts [6 0 R] >>"
    cid = (
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Bomb /FontDescriptor 7 0 R "
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> >>"
    )
    descriptor = (
        b"<< /Type /FontDescriptor /FontName /Bomb /Flags 4 /FontBBox [0 0 1000 1000] /FontFile2 8 0 R >>"
    )
    return one_page(
        zlib.compress(b"BT /F1 12 Tf 36 540 Td <0001> Tj ET\n"),
        resources=b"/Font << /F1 5 0 R >>",
        extra=(font, cid, descriptor, stream(b"/Filter /FlateDecode", zlib.compress(font_file, 9))),
    )


def font_cpu_bomb() -> bytes:
    """A TrueType cmap (format 4) of 32,767 segments each spanning 65,536 codes: 2^31 steps of pdfminer
    Python code in one call that never returns to the parser (only the hard deadline stops it)."""
    segments = 32_767
    ends = struct.pack(f">{segments}H", *([0xFFFF] * segments))
    starts = struct.pack(f">{segments}H", *([0] * segments))
    zeros = bytes(2 * segments)
    table = struct.pack(">HHHHHHH", 4, 0, 0, 2 * segments, 0, 0, 0) + ends + b"\0\0" + starts + zeros + zeros
    return _cid_font_page(_truetype(table))


def font_memory_bomb() -> bytes:
    """A TrueType cmap (format 12) with one group of 2^32 codes: pdfminer builds a dict entry per code,
    gigabytes in one call (only the sandbox's memory ceiling stops it)."""
    table = struct.pack(">HHIIIIII", 12, 0, 28, 0, 1, 0, 0xFFFFFFFF, 0)
    return _cid_font_page(_truetype(table))


CASES: list[Case] = [
    Case("xref stream bomb", xref_stream_bomb, "parse_limit_exceeded", "check"),
    Case("object stream bomb", object_stream_bomb, "parse_limit_exceeded", "check"),
    Case("page-tree flood without /Count", page_tree_flood_without_count, "parse_limit_exceeded", "check"),
    Case("deeply nested structure", deep_structure, "parse_limit_exceeded", "check"),
    Case("reference cycle", reference_cycle, "parse_limit_exceeded", "check"),
    Case("content bomb", content_bomb, "parse_limit_exceeded", "parse"),
    Case("double flate bomb", double_flate_bomb, "parse_limit_exceeded", "parse"),
    Case("operator flood", operator_flood, "parse_limit_exceeded", "parse"),
    Case("form flood", form_flood, "parse_limit_exceeded", "parse"),
    Case("page-tree flood with a lying /Count", page_tree_flood_lying_count, "parse_limit_exceeded", "parse"),
    Case("deep page tree", deep_page_tree, "parse_limit_exceeded", "parse"),
    Case("deeply nested content", deep_content, "parse_limit_exceeded", "parse"),
    Case("unterminated stream", unterminated_stream, "image_only_pdf", "parse"),
    Case("truncated flate content", truncated_flate_content, "columns_mismatch", "parse"),
    Case("font cmap CPU bomb", font_cpu_bomb, "parse_timeout", "parse", sandbox_only=True),
    Case("font cmap memory bomb", font_memory_bomb, "parse_limit_exceeded", "parse", sandbox_only=True),
]
BY_NAME = {case.name: case for case in CASES}


def ccitt_names() -> list[object]:
    """The names a CCITT fax filter goes by (full and abbreviated)."""
    from pdfminer.psparser import LIT

    return [LIT("CCITTFaxDecode"), LIT("CCF")]
