"""The bad-input corpus: every error code, generated here (nothing binary is committed)."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from fpdf import FPDF
from PIL import Image

from schedgen_ops.parsing import MAX_BYTES, ParseError, parse_pdf, quick_check
from schedgen_ops.parsing.readers import HEADERS
from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf


def blank_pdf(pages: int = 1, text: str | None = None) -> FPDF:
    pdf = FPDF(orientation="L", unit="pt", format="A4")
    for _ in range(pages):
        pdf.add_page()
        if text:
            pdf.set_font("Helvetica", "B", 20)
            pdf.text(36, 55, text)
    return pdf


def encrypted_pdf(user_password: str) -> bytes:
    pdf = blank_pdf(text="Lectures")
    pdf.set_encryption(owner_password="owner-secret", user_password=user_password)
    return bytes(pdf.output())


def image_only_pdf() -> bytes:
    # A "scan": the real timetable as a picture, no text layer.
    img = Image.new("RGB", (300, 200), "white")
    for x in range(20, 280):
        img.putpixel((x, 40), (0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    pdf = blank_pdf()
    pdf.image(buf, x=36, y=36, w=600)
    return bytes(pdf.output())


def good_pdf() -> bytes:
    return render_pdf(generate_timetable("lectures", seed=1, n_rows=5))


BAD_INPUTS: dict[str, tuple[str, object]] = {
    # name: (expected code, bytes or a zero-argument factory)
    "empty": ("empty_file", b""),
    "text file": ("not_a_pdf", b"Module,Group\nCOS 214,G01\n"),
    "png": ("not_a_pdf", b"\x89PNG\r\n\x1a\n" + b"\0" * 64),
    "truncated": ("corrupt_pdf", lambda: good_pdf()[: len(good_pdf()) // 2]),
    "garbage body": ("corrupt_pdf", b"%PDF-1.7\n" + b"\x00garbage\xff" * 200 + b"\n%%EOF\n"),
    "encrypted": ("encrypted_pdf", lambda: encrypted_pdf("student")),
    "101 pages": ("too_many_pages", lambda: bytes(blank_pdf(101).output())),
    "over 10 MB": ("file_too_large", b"%PDF-1.4\n" + b"0" * MAX_BYTES),
    "image only": ("image_only_pdf", image_only_pdf),
    "other document": ("not_a_timetable", lambda: bytes(blank_pdf(text="Class List 2026").output())),
    "wrong columns": (
        "columns_mismatch",
        lambda: render_pdf(generate_timetable("lectures", seed=2, n_rows=4), title="Exams"),
    ),
}


def _bytes(source: object) -> bytes:
    return source() if callable(source) else source  # type: ignore[return-value]


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_has_its_own_code(name):
    code, source = BAD_INPUTS[name]
    with pytest.raises(ParseError) as info:
        parse_pdf(_bytes(source))
    assert info.value.code == code
    assert info.value.message and info.value.hint
    assert "\n" not in info.value.one_line()


@pytest.mark.parametrize(
    "name", ["empty", "text file", "truncated", "encrypted", "101 pages", "over 10 MB", "garbage body"]
)
def test_quick_check_rejects_without_parsing(name):
    code, source = BAD_INPUTS[name]
    with pytest.raises(ParseError) as info:
        quick_check(_bytes(source), max_bytes=MAX_BYTES, max_pages=100)
    assert info.value.code == code


def test_quick_check_counts_pages_and_limits_are_parameters():
    pdf = render_pdf(generate_timetable("tests", seed=1, pages=3))
    assert quick_check(pdf, max_bytes=MAX_BYTES, max_pages=100) == 3
    with pytest.raises(ParseError) as info:
        parse_pdf(pdf, max_pages=2)
    assert info.value.code == "too_many_pages"
    with pytest.raises(ParseError) as info:
        parse_pdf(pdf, max_bytes=len(pdf) - 1)
    assert info.value.code == "file_too_large"
    assert quick_check(bytes(blank_pdf(100).output()), max_bytes=MAX_BYTES, max_pages=100) == 100


def test_not_a_timetable_message_names_the_title():
    with pytest.raises(ParseError) as info:
        parse_pdf(bytes(blank_pdf(text="Class List 2026").output()))
    assert '"Class List 2026"' in info.value.message


def test_columns_mismatch_names_expected_and_found():
    header = [*HEADERS["tests"][:-1], "Room"]
    pdf = render_pdf(generate_timetable("tests", seed=2, n_rows=3), header=header)
    with pytest.raises(ParseError) as info:
        parse_pdf(pdf)
    assert info.value.code == "columns_mismatch"
    assert "Room" in info.value.message and "Venue" in info.value.message


def test_owner_only_encryption_is_read_like_any_viewer_would():
    """No user password: viewers open it without asking, so the parser decrypts and reads it."""
    with pytest.raises(ParseError) as info:
        parse_pdf(encrypted_pdf(""))
    # It got past decryption to the title ("Lectures") and found no lecture table under it.
    assert info.value.code == "columns_mismatch"
    with pytest.raises(ParseError) as info:
        parse_pdf(encrypted_pdf("student"))
    assert info.value.code == "encrypted_pdf"


def test_timeout_works_off_the_main_thread():
    big = render_pdf(generate_timetable("tests", seed=9, pages=40))
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(lambda: (threading.current_thread().name, parse_pdf(big, timeout_s=0.005)))
        with pytest.raises(ParseError) as info:
            future.result(timeout=30)
    assert info.value.code == "parse_timeout"
    assert "0.005 s" in info.value.message
    # The same file parses within the normal limit, also in a thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        name, tt = pool.submit(lambda: (threading.current_thread().name, parse_pdf(big))).result(timeout=60)
    assert name != threading.main_thread().name and tt.source is not None and tt.source.pages == 40
