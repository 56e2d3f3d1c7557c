"""Upload validation, job endpoints, errors and auth against a real api process (no worker needed)."""

from __future__ import annotations

import socket
import time

import psycopg
import pytest
from fpdf import FPDF
from stackkit import OPS_TOKEN, Stack


def blank_pdf(pages: int = 1, text: str | None = None, password: str | None = None) -> bytes:
    pdf = FPDF(orientation="L", unit="pt", format="A4")
    for _ in range(pages):
        pdf.add_page()
        if text:
            pdf.set_font("Helvetica", "B", 20)
            pdf.text(36, 55, text)
    if password:
        pdf.set_encryption(owner_password="owner-secret", user_password=password)
    return bytes(pdf.output())


@pytest.fixture
def api(service_stack) -> Stack:  # type: ignore[no-untyped-def]
    return service_stack(SCHEDGEN_UPLOAD_MAX_BYTES="200000", SCHEDGEN_UPLOAD_MAX_PAGES="3")


BAD_UPLOADS = {
    "empty": (b"", 422, "empty_file"),
    "text file": (b"Module,Group\nCOS 214,G01\n", 415, "not_a_pdf"),
    "not a pdf, long": (b"<html>" + b"x" * 5000, 415, "not_a_pdf"),
    "too many pages": (None, 422, "too_many_pages"),
    "encrypted": (None, 422, "encrypted_pdf"),
    "too big": (b"%PDF-1.4\n" + b"0" * 300_000, 413, "file_too_large"),
    "truncated": (b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\n", 422, "corrupt_pdf"),
}


def test_bad_upload_corpus_gets_4xx_with_the_parser_codes(api: Stack, database_url: str) -> None:
    corpus = dict(BAD_UPLOADS)
    corpus["too many pages"] = (blank_pdf(4), 422, "too_many_pages")
    corpus["encrypted"] = (blank_pdf(1, "Lectures", password="student"), 422, "encrypted_pdf")
    for name, (data, status, code) in corpus.items():
        response = api.upload(data or b"", filename=f"{name}.pdf")
        assert response.status_code == status, (name, response.text)
        body = response.json()
        assert body["error"]["code"] == code, name
        assert body["error"]["request_id"] == response.headers["x-request-id"]
        assert "Traceback" not in response.text
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,), "rejected uploads left jobs"
    metrics = api.client.get("/metrics").text
    assert 'schedgen_uploads_total{outcome="not_a_pdf"} 2.0' in metrics
    assert 'status="413"' in metrics and 'status="415"' in metrics


def test_oversized_stream_is_cut_off_without_reading_the_rest(api: Stack) -> None:
    """Chunked upload of 20 MB against a 200 kB cap: 413 arrives long before the body is sent."""
    boundary = "XyZ"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    ).encode()
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    sock.sendall(
        (
            "POST /api/uploads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n"
        ).encode()
    )
    chunk = b"0" * 65536
    sent = 0
    sock.sendall(f"{len(head):x}\r\n".encode() + head + b"\r\n")
    sock.setblocking(False)
    response = b""
    while sent < 20_000_000:
        try:
            response += sock.recv(65536)
            if response:
                break
        except BlockingIOError:
            pass
        try:
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            time.sleep(0.01)
    sock.setblocking(True)
    deadline = time.monotonic() + 5
    while b"\r\n\r\n" not in response and time.monotonic() < deadline:
        response += sock.recv(65536)
    sock.close()
    assert response.startswith(b"HTTP/1.1 413"), response[:200]
    assert b"file_too_large" in response or b"\r\n\r\n" in response
    assert sent < 5_000_000, f"server read {sent} bytes past a 200 kB cap"


def test_job_endpoints_and_error_envelope(api: Stack, synthetic_pdfs: dict[str, bytes]) -> None:
    accepted = api.upload(synthetic_pdfs["tests"], headers={"X-Request-ID": "req-123"})
    assert accepted.status_code == 202
    assert accepted.headers["x-request-id"] == "req-123"
    job = accepted.json()
    assert len(job["job_id"]) == 32 and job["status"] == "queued"
    status = api.client.get(job["status_url"]).json()
    assert status["status"] == "queued" and status["attempts"] == 0 and status["queue_position"] == 0
    second = api.upload(synthetic_pdfs["exams"]).json()
    assert api.client.get(second["status_url"]).json()["queue_position"] == 1
    not_done = api.client.get(job["events_url"])
    assert not_done.status_code == 409 and not_done.json()["error"]["code"] == "job_not_completed"
    assert api.client.get(job["calendar_url"]).status_code == 409
    missing = api.client.get("/api/jobs/" + "0" * 32)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "job_not_found"
    assert api.client.get("/api/jobs/../etc").status_code == 404
    assert (
        api.client.post("/api/uploads", content=b"x", headers={"Content-Type": "text/plain"}).status_code
        == 415
    )


def test_priority_needs_the_ops_token(
    api: Stack, synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    plain = api.upload(synthetic_pdfs["exams"], data={"priority": "high"}).json()
    ops = api.upload(
        synthetic_pdfs["exams"], data={"priority": "high"}, headers={"Authorization": f"Bearer {OPS_TOKEN}"}
    ).json()
    with psycopg.connect(database_url) as conn:
        rows = dict(conn.execute("SELECT id, priority FROM jobs").fetchall())
    assert rows == {plain["job_id"]: "default", ops["job_id"]: "high"}
    assert api.client.get("/api/queue").status_code == 401
    stats = api.client.get("/api/queue", headers={"Authorization": f"Bearer {OPS_TOKEN}"}).json()
    assert stats["queues"]["high"]["waiting"] == 1 and stats["queues"]["default"]["waiting"] == 1
    assert stats["ledger"]["queued"] == 2


def test_health_endpoints(api: Stack) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200
    assert {name for name, check in ready.json()["checks"].items() if check["ok"]} == {
        "postgres",
        "redis",
        "storage",
    }


HOSTILE_NAMES = [
    ("a\x00b.pdf", "ab.pdf"),  # NUL: Postgres text refuses it (was a 500)
    ("../../etc/passwd\x07.pdf", "passwd.pdf"),
    ("C:\\Users\\x\\time table.pdf", "time table.pdf"),
    ("\x00\x01", None),
    ("é" * 300 + ".pdf", "é" * 255),
    ("\u202eftp.pdf", "ftp.pdf"),  # right-to-left override (a format character) would disguise it
    ("a\x7fb\tc\x1b[31m.pdf", "abc[31m.pdf"),  # DEL, tab, terminal escape
]


def test_hostile_filenames_are_stored_as_plain_labels(
    api: Stack, database_url: str, synthetic_pdfs: dict[str, bytes]
) -> None:
    # One api for all names (fewer than the 10 uploads an hour). A raw body: httpx would
    # percent-encode the control bytes, and a hostile client does not.
    boundary = "schedgen-hostile-name"
    for sent, stored in HOSTILE_NAMES:
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
            + sent.encode()
            + b'"\r\nContent-Type: application/pdf\r\n\r\n'
            + synthetic_pdfs["exams"]
            + f"\r\n--{boundary}--\r\n".encode()
        )
        accepted = api.client.post(
            "/api/uploads",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert accepted.status_code == 202, (sent, accepted.text)
        with psycopg.connect(database_url) as conn:
            job_id = accepted.json()["job_id"]
            row = conn.execute("SELECT filename FROM jobs WHERE id = %s", (job_id,)).fetchone()
        assert row is not None and row[0] == stored, sent


def _part(name: str, body: bytes, boundary: str = "b0undary", filename: str | None = "t.pdf") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + body + b"\r\n"


MALFORMED = {
    # name: (body, boundary in the Content-Type)
    "no boundary line at all": (b"%PDF-1.4 just bytes", "b0undary"),
    "another boundary": (_part("file", b"%PDF-1.4", "other") + b"--other--\r\n", "b0undary"),
    "header line without a colon": (
        b"--b0undary\r\nno colon here\r\n\r\n%PDF-1.4\r\n--b0undary--\r\n",
        "b0undary",
    ),
    "NUL in a header name": (
        b"--b0undary\r\nContent\x00Type: x\r\n\r\n%PDF-1.4\r\n--b0undary--\r\n",
        "b0undary",
    ),
    "ends before the closing boundary": (_part("file", b"%PDF-1.4\n")[:-2], "b0undary"),
    "closing boundary missing": (_part("file", b"%PDF-1.4\n"), "b0undary"),
    "endless part headers": (b"--b0undary\r\nX-Pad: " + b"a" * 20_000 + b"\r\n\r\n", "b0undary"),
    "boundary longer than 200 bytes": (b"--" + b"q" * 300 + b"\r\n", "q" * 300),
}


#: The only messages a malformed body may get: ours, stable, never the multipart library's wording.
MULTIPART_MESSAGES = {
    "the body is not valid multipart/form-data: check the boundary, the part headers and the CRLFs",
    "the multipart body ends before its closing boundary (--BOUNDARY--)",
    "a part's headers exceed 8192 bytes",
    "the multipart boundary is longer than 200 bytes",
}


def test_malformed_multipart_bodies_get_a_400_json_error(api: Stack, database_url: str) -> None:
    for name, (body, boundary) in MALFORMED.items():
        response = api.client.post(
            "/api/uploads",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert response.status_code == 400, (name, response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] == "invalid_multipart", name
        assert error["message"] in MULTIPART_MESSAGES, (name, error["message"])
        assert error["request_id"] == response.headers["x-request-id"] and "Traceback" not in response.text
    no_file = _part("priority", b"high", filename=None) + b"--b0undary--\r\n"
    missing = api.client.post(
        "/api/uploads", content=no_file, headers={"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    assert missing.status_code == 422 and missing.json()["error"]["code"] == "invalid_request"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    assert 'schedgen_uploads_total{outcome="invalid_multipart"} 8.0' in api.client.get("/metrics").text


def test_reading_stops_at_the_closing_boundary(api: Stack, synthetic_pdfs: dict[str, bytes]) -> None:
    """A complete body followed by an endless chunked tail: the 202 comes back while the tail is sent."""
    body = _part("file", synthetic_pdfs["exams"]) + b"--b0undary--\r\n"
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=10)
    sock.sendall(
        b"POST /api/uploads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=b0undary\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n"
    )
    sock.setblocking(False)
    tail, sent, response = b"x" * 65536, 0, b""
    while sent < 50_000_000 and b"\r\n\r\n" not in response:
        try:
            response += sock.recv(65536)
            continue
        except BlockingIOError:
            pass
        try:
            sock.sendall(f"{len(tail):x}\r\n".encode() + tail + b"\r\n")
            sent += len(tail)
        except (BlockingIOError, BrokenPipeError, ConnectionResetError):
            time.sleep(0.01)
    sock.setblocking(True)
    deadline = time.monotonic() + 5
    while b'"job_id"' not in response and time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            break
        response += chunk
    sock.close()
    assert response.startswith(b"HTTP/1.1 202"), response[:300]
    assert b'"job_id"' in response
    assert sent < 10_000_000, f"the api waited for {sent} bytes after the closing boundary"
