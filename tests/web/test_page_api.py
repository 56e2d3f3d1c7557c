"""The page's HTTP side against a real api + worker (no browser): security headers, hashed static files,
the subscription capability (unguessable, stored as a hash, no listing, gone with its results) and every
limit of the preview/subscription calls, plus the server's own size check behind the browser's."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import psycopg
import pytest
from stackkit import Stack

from schedgen_ops.parsing.errors import ERROR_CODES
from schedgen_ops.service import ledger
from schedgen_ops.service.web import assets
from schedgen_ops.service.web.calendar import MAX_FILES
from schedgen_ops.service.web.messages import MESSAGES
from schedgen_ops.service.web.routes import MAX_BODY_BYTES, PAGE_CSP, public_scheme, token_hash


def test_every_parser_error_code_has_a_student_message() -> None:
    assert MESSAGES.keys() >= ERROR_CODES, ERROR_CODES - MESSAGES.keys()


def test_the_page_carries_a_strict_csp_and_hashed_assets(web_stack: Stack) -> None:
    page = web_stack.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == PAGE_CSP
    assert "'unsafe-inline'" not in PAGE_CSP and "script-src 'self'" in PAGE_CSP
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    html = page.text
    assert "<script>" not in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html.replace('<script src="', "<x ")), "inline script"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    assert not re.search(r"https?://", html), "the page loads nothing from another origin"
    urls = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert len(urls) == 2 and all(re.fullmatch(r"/static/app\.[0-9a-f]{12}\.(js|css)", u) for u in urls)
    for url in urls:
        asset = web_stack.client.get(url)
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        name = url.rsplit("/", 1)[1]
        assert assets.assets()[name].body == asset.content
    assert web_stack.client.get("/static/app.000000000000.js").status_code == 404
    assert web_stack.client.get("/static/../app.py").status_code == 404


def _completed(stack: Stack, pdf: bytes, name: str) -> str:
    job = stack.upload(pdf, name).json()["job_id"]
    assert stack.wait_done(job)["status"] == "completed"
    return str(job)


@pytest.fixture(scope="module")
def jobs(web_stack: Stack) -> dict[str, str]:
    """One completed job per kind, from the parser's synthetic UP-format PDFs."""
    from webkit import ensure_worker

    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    ensure_worker(web_stack)

    return {
        kind: _completed(web_stack, render_pdf(generate_timetable(kind, seed=7, n_rows=6)), f"{kind}.pdf")
        for kind in ("lectures", "tests", "exams")
    }


def _sub(stack: Stack, body: dict[str, Any]) -> httpx.Response:
    return stack.client.post("/api/subscriptions", json=body)


def test_a_subscription_is_an_unlisted_capability_that_ends_with_its_results(
    web_stack: Stack, jobs: dict[str, str]
) -> None:
    body = {"jobs": [jobs["lectures"], jobs["tests"]], "semester": "S1"}
    made = _sub(web_stack, body)
    assert made.status_code == 201, made.text
    info = made.json()
    token = info["url"].rsplit("/", 1)[1].removesuffix(".ics")
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", token) and info["webcal_url"].startswith("webcal://")
    assert _sub(web_stack, body).json()["url"] != info["url"]  # a new capability every time
    # Behind the edge (TLS ends at Traefik, a trusted proxy: loopback here) the URLs say https.
    edge = web_stack.client.post("/api/subscriptions", json=body, headers={"X-Forwarded-Proto": "https"})
    assert edge.json()["url"].startswith(f"https://127.0.0.1:{web_stack.port}/cal/")
    cal = web_stack.client.get(f"/cal/{token}.ics")
    assert cal.status_code == 200 and cal.content.count(b"BEGIN:VEVENT") > 0
    assert cal.headers["referrer-policy"] == "no-referrer" and "content-disposition" not in cal.headers
    download = web_stack.client.get(info["download_url"])
    assert download.headers["content-disposition"] == 'attachment; filename="up-timetable.ics"'
    assert download.content == cal.content  # stable DTSTAMP: the same bytes at every poll
    # No listing, no guessing: only the exact token answers, and only its hash is stored.
    other_last = "B" if token.endswith("A") else "A"  # one character off (a token ending in A is 1 in 64)
    for path in (
        "/cal/",
        "/cal",
        f"/cal/{token[:-1]}.ics",
        f"/cal/{token[:-1]}{other_last}.ics",
        "/cal/..%2f.ics",
    ):
        assert web_stack.client.get(path).status_code == 404, path
    url = web_stack.env["SCHEDGEN_DATABASE_URL"]
    with psycopg.connect(url, autocommit=True) as conn:
        stored = conn.execute("SELECT token_hash, job_ids::text FROM subscriptions").fetchall()
        assert (token_hash(token), "{" + ",".join(body["jobs"]) + "}") in stored
        assert not any(token in h for h, _ in stored)
        # The retention purge removes a job: its subscriptions answer 410 from then on.
        conn.execute(
            "UPDATE jobs SET expires_at = now() - interval '1 second' WHERE id = %s", (jobs["tests"],)
        )
        purged = ledger.expired(conn)
        assert ledger.delete_finished(conn, [j.id for j in purged.rows]) == 1
    gone = web_stack.client.get(f"/cal/{token}.ics")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "subscription_expired"
    assert _sub(web_stack, body).json()["error"]["code"] == "job_not_found"
    # A subscription past its expiry is 404 at once and deleted when the next one is made.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "UPDATE subscriptions SET expires_at = now() - interval '1 second' WHERE token_hash = %s",
            (token_hash(token),),
        )
        assert web_stack.client.get(f"/cal/{token}.ics").status_code == 404
        assert _sub(web_stack, {"jobs": [jobs["exams"]]}).status_code == 201
        left = conn.execute("SELECT count(*) FROM subscriptions WHERE token_hash = %s", (token_hash(token),))
        assert left.fetchone() == (0,)


def test_the_preview_and_subscription_calls_refuse_what_is_out_of_bounds(
    web_stack: Stack, jobs: dict[str, str]
) -> None:
    lectures = jobs["lectures"]
    too_many = [f"{i:032x}" for i in range(MAX_FILES + 1)]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"jobs": []}, 422, "invalid_request"),
        ({"jobs": too_many}, 422, "invalid_request"),
        ({"jobs": [lectures, lectures], "semester": "S1"}, 422, "invalid_request"),
        ({"jobs": ["../../etc/passwd"]}, 422, "invalid_request"),
        ({"jobs": ["0" * 32]}, 404, "job_not_found"),
        ({"jobs": [lectures], "semester": "S3"}, 422, "invalid_request"),
        ({"jobs": [lectures], "semester": "S1", "exam_duration_min": 601}, 422, "invalid_request"),
        ({"jobs": [lectures], "semester": "S1", "groups": ["COS 214=P01"] * 201}, 422, "invalid_request"),
        ({"jobs": [lectures], "semester": "S1", "groups": ["no equals sign"]}, 422, "invalid_request"),
        ({"jobs": [lectures], "semester": "S1", "groups": ["COS 214= , "]}, 422, "invalid_request"),
        ({"jobs": [lectures], "semester": "S1", "listing": True}, 422, "invalid_request"),
    ]
    for body, status, code in cases:
        for path in ("/api/calendars/preview", "/api/subscriptions"):
            answer = web_stack.client.post(path, json=body)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (path, body)
    # Bodies: capped at MAX_BODY_BYTES whether or not they say their length; not JSON is 400.
    big = json.dumps({"jobs": [lectures], "groups": ["COS 214=" + "G" * 190] * 400}).encode()
    assert len(big) > MAX_BODY_BYTES
    for path in ("/api/calendars/preview", "/api/subscriptions"):
        headers = {"Content-Type": "application/json"}
        for content in (big, iter([big[:40_000], big[40_000:]])):  # Content-Length, then chunked
            answer = web_stack.client.post(path, content=content, headers=headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (413, "body_too_large"), path
        for raw, status, code in ((b"{", 400, "invalid_json"), (b"[]", 422, "invalid_request")):
            answer = web_stack.client.post(path, content=raw, headers=headers)
            assert (answer.status_code, answer.json()["error"]["code"]) == (status, code), (path, raw)
    # Dates that cannot make a calendar: the preview says why, a subscription is refused.
    for body, code in (
        ({"jobs": [lectures]}, "date_range_required"),
        ({"jobs": [lectures], "from": "2026-03-01", "until": "2026-02-01"}, "bad_date_range"),
    ):
        seen = web_stack.client.post("/api/calendars/preview", json=body).json()
        assert seen["calendar_events"] is None and seen["calendar_error"]["code"] == code
        assert _sub(web_stack, body).json()["error"]["code"] == code
    exams = web_stack.client.post(
        "/api/calendars/preview", json={"jobs": [jobs["exams"]], "exam_duration_min": 90}
    ).json()
    assert exams["dated"] and all(d["end_estimated"] for d in exams["dated"])


def test_the_server_checks_size_again_behind_the_browser(web_stack: Stack) -> None:
    limit = int(web_stack.env["SCHEDGEN_UPLOAD_MAX_BYTES"])
    answer = web_stack.upload(b"%PDF-1.4\n" + b"0" * limit, "big.pdf")
    assert answer.status_code == 413 and answer.json()["error"]["code"] == "file_too_large"
    answer = web_stack.upload(b"GIF89a" + b"0" * 100, "cat.pdf")
    assert answer.status_code == 415 and answer.json()["error"]["code"] == "not_a_pdf"


def _serve(headers: dict[str, str]) -> tuple[str, Any]:
    """A throw-away HTTP server answering / with a page and exactly these headers."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(b"<!doctype html><title>x</title>")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server


def test_the_checklist_checks_the_pages_security_headers(web_stack: Stack, tmp_path: Any) -> None:
    from schedgen_ops.ops.readiness import Context, LiveTarget
    from schedgen_ops.ops.readiness.evaluate import run_check
    from schedgen_ops.ops.readiness.registry import get

    check = get("live-page-headers")
    good = run_check(check, Context(project=tmp_path, live=LiveTarget(url=web_stack.base_url)))
    assert good.status == "pass", good.message
    strict = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
    }
    for headers, wrong in (
        (
            {**strict, "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'"},
            "CSP",
        ),
        (strict, "CSP script sources: none set"),
        (
            {
                **strict,
                "Content-Security-Policy": PAGE_CSP.replace("frame-ancestors 'none'", ""),
                "X-Frame-Options": "",
            },
            "can be framed",
        ),
        ({"Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY"}, "x-content-type-options: missing"),
    ):
        url, server = _serve(headers)
        try:
            result = run_check(check, Context(project=tmp_path, live=LiveTarget(url=url)))
        finally:
            server.shutdown()
        assert result.status == "fail", headers
        assert any(wrong in f.message for f in result.findings if not f.ok), [
            f.message for f in result.findings
        ]


def test_x_forwarded_proto_counts_only_from_a_trusted_proxy() -> None:
    from ipaddress import ip_network

    trusted = [ip_network("10.77.1.0/24")]
    assert public_scheme("http", "10.77.1.5", "https", trusted) == "https"
    assert public_scheme("http", "203.0.113.9", "https", trusted) == "http"  # a client's own header
    assert public_scheme("http", "10.77.1.5", "javascript", trusted) == "http"
    assert public_scheme("http", None, "https", trusted) == "http"
