"""Every parser limit, hit in-process (the `schedgen parse` path): the code, the message, the time and the
peak memory of this process while it parsed. The hostile files come from tests/parsing/hostile.py."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pdfplumber
import pytest
from pdfminer.pdfdocument import PDFDocument
from pdfminer.pdfpage import PDFPage
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import stream_value

from schedgen_ops.parsing import ParseError, parse_pdf, quick_check
from schedgen_ops.parsing.limits import CHECK_LIMITS, PARSE_LIMITS, Limits, MiB
from tests.parsing import hostile

FAST = Limits(max_operations=20_000)  # the operations cap is hit after 20,000 objects instead of 1,000,000


def _hwm_kb() -> int:
    match = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match
    return int(match.group(1))


def measured(fn: Callable[[], Any]) -> tuple[ParseError, float, float]:
    """Run ``fn`` (which must raise `ParseError`); return it, the wall seconds and this process's peak
    resident memory above what it held before, in MiB (kernel VmHWM, reset first)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _hwm_kb()
    started = time.monotonic()
    with pytest.raises(ParseError) as info:
        fn()
    return info.value, time.monotonic() - started, (_hwm_kb() - before) / 1024


IN_PROCESS = [case for case in hostile.CASES if not case.sandbox_only]


@pytest.mark.parametrize("case", IN_PROCESS, ids=[case.name for case in IN_PROCESS])
def test_hostile_pdf_fails_fast_small_and_with_its_code(case: hostile.Case) -> None:
    data = case.build()
    if case.stage == "check":
        error, wall, peak_mb = measured(lambda: quick_check(data))
    else:
        assert quick_check(data) >= 1  # the upload check accepts it: only the parse can meet it
        error, wall, peak_mb = measured(lambda: parse_pdf(data, limits=FAST))
    assert error.code == case.code, error.message
    assert wall < 10, f"{case.name}: {wall:.1f} s"
    assert peak_mb < 120, f"{case.name}: the parse grew this process by {peak_mb:.0f} MiB"


def test_a_bomb_stops_at_the_stream_cap_not_at_its_size() -> None:
    error, _, peak_mb = measured(lambda: parse_pdf(hostile.content_bomb()))  # 1 GiB inflated
    assert error.message.endswith("a stream decodes to more than 16 MiB")
    assert peak_mb < 3 * PARSE_LIMITS.max_stream_bytes / MiB
    error, _, _ = measured(lambda: quick_check(hostile.xref_stream_bomb()))
    assert error.message.endswith(f"a stream decodes to more than {CHECK_LIMITS.max_stream_bytes // MiB} MiB")


def test_the_document_cap_counts_every_stream() -> None:
    """Three streams of 2 MiB each pass a 3 MiB stream cap; together they pass a 5 MiB document cap."""
    small = Limits(max_stream_bytes=3 * MiB, max_document_bytes=5 * MiB)
    bomb = hostile.zero_bomb(2 * MiB)
    streams = tuple(hostile.stream(b"/Filter /FlateDecode", bomb) for _ in range(3))
    pdf = hostile.build(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 842 595] /Contents [4 0 R 5 0 R 6 0 R] >>",
            *streams,
        ]
    )
    error, _, _ = measured(lambda: parse_pdf(pdf, limits=small))
    assert error.message.endswith("its streams decode to more than 5 MiB")
    # With room for all three, the same file gets past the byte caps (and has no text to read).
    error, _, _ = measured(lambda: parse_pdf(pdf, limits=Limits(max_stream_bytes=3 * MiB)))
    assert error.code == "image_only_pdf"


def test_nul_runs_cost_no_more_than_whitespace() -> None:
    """15 MiB of NULs: pdfminer skipped them one call per byte (a minute, out of the deadline's reach)."""
    error, wall, _ = measured(lambda: parse_pdf(hostile.one_page(hostile.zero_bomb(15 * MiB))))
    assert error.code == "image_only_pdf" and wall < 10


def test_run_length_bombs_are_capped_too() -> None:
    pdf = hostile.one_page(b"\x81\x00" * 140_000 + b"\x80", filters=b"/Filter /RunLengthDecode")  # 17.5 MiB
    error, _, peak_mb = measured(lambda: parse_pdf(pdf))
    assert error.message.endswith("a stream decodes to more than 16 MiB") and peak_mb < 80


def test_ascii85_zero_runs_are_refused_before_they_decode() -> None:
    """Each "z" stands for 4 zero bytes: 4.5 M of them would be 18 MiB, past the 16 MiB stream cap."""
    pdf = hostile.one_page(b"z" * 4_500_000 + b"~>", filters=b"/Filter /ASCII85Decode")
    error, _, peak_mb = measured(lambda: parse_pdf(pdf))
    assert error.message.endswith("a stream decodes to more than 16 MiB") and peak_mb < 80
    # Refused before decoding: a decoder patched to fail shows it is never called.
    from pdfminer.psparser import LIT

    from schedgen_ops.parsing import decode
    from schedgen_ops.parsing.limits import Budget, Deadline, Limits

    budget = Budget(Limits(), Deadline(5))
    original, decode.ascii85decode = decode.ascii85decode, None  # type: ignore[assignment]
    try:
        with pytest.raises(ParseError):
            decode._apply(LIT("ASCII85Decode"), {}, b"z" * 100, 300, budget)
    finally:
        decode.ascii85decode = original


def test_ccitt_image_data_is_never_decoded() -> None:
    """pdfminer's CCITT decoder ignores /Rows and grows without a bound; text needs no pixels."""
    from schedgen_ops.parsing.decode import _PASSTHROUGH, _apply

    image = b"\x00\x01" * 1000
    assert all(name in _PASSTHROUGH for name in hostile.ccitt_names())
    for name in hostile.ccitt_names():
        assert _apply(name, {"Columns": 10**8}, image, 16, None) is image  # type: ignore[arg-type]


def test_the_operations_cap_names_its_value() -> None:
    error, _, _ = measured(lambda: parse_pdf(hostile.operator_flood(), limits=FAST))
    assert "more than 20,000 content operations" in error.message
    error, _, _ = measured(lambda: quick_check(hostile.reference_cycle(), limits=FAST))  # lookups count too
    assert error.message.endswith("more than 20,000 content operations or lookups")


def test_a_page_may_draw_only_so_many_glyphs() -> None:
    """One operator, 6,000 glyphs: the per-page cap (5,000 here), not the operations cap, stops it."""
    content = b"BT /F1 1 Tf 0 0 Td (" + b"A" * 6_000 + b") Tj ET"
    pdf = hostile.one_page(
        zlib.compress(content), resources=hostile.HELVETICA, extra=(hostile.HELVETICA_OBJ,)
    )
    error, _, _ = measured(lambda: parse_pdf(pdf, limits=Limits(max_page_items=5_000)))
    assert error.message.endswith("a page draws more than 5,000 glyphs and paths")


def test_nesting_is_capped_in_structure_content_page_tree_and_graphics_state() -> None:
    for build, what, stage in [
        (hostile.deep_structure, "arrays and dictionaries", quick_check),
        (hostile.deep_content, "arrays and dictionaries", parse_pdf),
        (hostile.deep_page_tree, "the page tree", parse_pdf),
        (lambda: hostile.one_page(zlib.compress(b"q " * 500)), "saved graphics states (q)", parse_pdf),
    ]:
        error, _, _ = measured(lambda: stage(build()))  # noqa: B023 - called at once
        assert error.message.endswith(f"{what} nested more than 100 levels deep"), error.message


def test_page_tree_nodes_are_capped_before_the_walk() -> None:
    error, _, _ = measured(lambda: parse_pdf(hostile.page_tree_flood_lying_count()))
    assert error.message.endswith("its page tree has more than 1,000 nodes")
    # The cap grows with the page limit: 4 nodes per allowed page.
    error, _, _ = measured(lambda: quick_check(hostile.page_tree_flood_without_count(), max_pages=500))
    assert error.message.endswith("its page tree has more than 2,000 nodes")


def test_the_deadline_holds_within_two_seconds_between_pdfminer_steps() -> None:
    """An operator flood under every cap still ends at the time limit (checked every 256 objects)."""
    generous = Limits(max_operations=100_000_000)
    error, wall, _ = measured(lambda: parse_pdf(hostile.operator_flood(), timeout_s=1.0, limits=generous))
    assert error.code == "parse_timeout" and "1 s" in error.message
    assert wall < 1.0 + 2.0


def test_the_deadline_holds_inside_a_pdfminer_call_that_never_returns(tmp_path: Path) -> None:
    """A crafted font table keeps pdfminer in one loop for hours; on the main thread (the CLI's case) the
    alarm still ends the parse at the limit + 0.5 s. Run in its own process: the memory is not ours."""
    pdf = tmp_path / "font.pdf"
    pdf.write_bytes(hostile.font_cpu_bomb())
    code = (
        "import sys, time; from schedgen_ops.parsing import parse_pdf, ParseError\n"
        "t = time.monotonic()\n"
        "try: parse_pdf(open(sys.argv[1], 'rb').read(), timeout_s=1.0)\n"
        "except ParseError as e: print(e.code, round(time.monotonic() - t, 2))\n"
    )
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code, str(pdf)], capture_output=True, text=True, timeout=60)
    assert out.stdout.split()[0] == "parse_timeout", out.stdout + out.stderr
    assert float(out.stdout.split()[1]) < 1.0 + 2.0
    assert time.monotonic() - started < 30


def test_a_damaged_flate_stream_yields_what_precedes_the_damage() -> None:
    """A bad Adler-32 (as pdfminer recovers it): the bounded decoder keeps the data, linearly."""
    data = bytearray(zlib.compress(hostile.text_page(b"Class List 2026")))
    data[-1] ^= 0xFF
    pdf = hostile.one_page(bytes(data), resources=hostile.HELVETICA, extra=(hostile.HELVETICA_OBJ,))
    error, _, _ = measured(lambda: parse_pdf(pdf))
    assert error.code == "not_a_timetable" and '"Class List 2026"' in error.message


def test_pdfminer_used_directly_is_unbounded_as_before(up_pdf: Callable[[str], Path]) -> None:
    """The decoder swap only bounds our parses: pdfplumber and pdfminer used directly read as before."""
    with pdfplumber.open(up_pdf("UP_MOD_XLS.pdf")) as pdf:
        assert "Lectures" in (pdf.pages[0].extract_text() or "")
    doc = PDFDocument(PDFParser(io.BytesIO(hostile.one_page(hostile.zero_bomb(20 * MiB)))))
    page = next(PDFPage.create_pages(doc))
    assert len(stream_value(page.contents[0]).get_data()) == 20 * MiB  # above our 16 MiB cap
