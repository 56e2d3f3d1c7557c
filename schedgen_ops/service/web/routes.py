"""The student page's routes: the page at /, its hashed static files, the preview, subscriptions and
the subscription calendar itself (/cal/{token}.ics).

Uploads and job status go through the api's own endpoints (/api/uploads, /api/jobs/{id}); this module
adds only what the page needs on top: merging several jobs' results with the student's choices.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Callable
from functools import cache, partial
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service import ledger
from schedgen_ops.service.api_errors import error_response as _error  # the api's error envelope
from schedgen_ops.service.clients import Network, _is_trusted
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.schemas import ErrorResponse
from schedgen_ops.service.settings import ServiceSettings
from schedgen_ops.service.web import assets
from schedgen_ops.service.web.calendar import (
    MAX_FILES,
    CalendarRequest,
    Choices,
    SubscriptionCreated,
    build_calendar,
    preview,
)
from schedgen_ops.service.web.calendar import semester_defaults as _semester_defaults
from schedgen_ops.service.web.messages import MESSAGES

#: The page's Content-Security-Policy: only our own script and style files, no inline code, no framing.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # a subscription URL on the page must never leave in a Referer
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: The largest valid body (10 job ids, 200 group choices of 200 characters) is about 41 KB.
MAX_BODY_BYTES = 64 * 1024
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "The body is not JSON."),
        (404, "A job is unknown, not completed or expired (job_not_found)."),
        (422, "Invalid request or choices (invalid_request, bad_group_filter, date_range_required, ...)."),
        (429, "Rate limited; see Retry-After."),
        (503, "The job database is unavailable."),
    )
}
_ERRORS[413] = {"model": ErrorResponse, "description": f"The body is larger than {MAX_BODY_BYTES} bytes."}
_JSON_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CalendarRequest.model_json_schema(by_alias=True)}},
    }
}
TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32): 256 random bits


def new_token() -> str:
    """An unguessable subscription capability (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@cache
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("schedgen_ops.service.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
    )
    env.globals["static"] = assets.url_for
    return env


async def read_json(request: Request) -> CalendarRequest | JSONResponse:
    """The body as a `CalendarRequest`, read with a cap: a hostile client cannot make us buffer megabytes
    of JSON (FastAPI's own body parameters read the whole body first)."""
    length = request.headers.get("content-length", "")
    too_large = _error(413, "body_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            return too_large
    try:
        return CalendarRequest.model_validate_json(bytes(data))
    except ValidationError as exc:
        errors = exc.errors()
        if not errors:
            return _error(422, "invalid_request", "invalid request")
        first = errors[0]
        if first["type"] == "json_invalid":
            return _error(400, "invalid_json", "the body is not a JSON object")
        where = ".".join(str(part) for part in ("body", *first["loc"]))
        return _error(422, "invalid_request", f"{where}: {first['msg']}")


async def handle_json(request: Request, handler: Callable[[CalendarRequest], Response]) -> Response:
    """Read the body (`read_json`), answer a bad one, else run ``handler`` on it in a worker thread: it
    queries Postgres and builds calendars, which must not block the event loop."""
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    return await run_in_threadpool(handler, body)


def public_scheme(scheme: str, peer: str | None, forwarded_proto: str, trusted: list[Network]) -> str:
    """The scheme the student reached us by: X-Forwarded-Proto (http/https) counts only from a trusted
    proxy (Traefik terminates TLS and forwards plain http)."""
    if peer and forwarded_proto in ("http", "https") and _is_trusted(peer, trusted):
        return forwarded_proto
    return scheme


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def mount(app: FastAPI, ctx: Callable[[], ServiceContext], settings: ServiceSettings) -> None:
    """Add the page's routes to the api (called once by `service.app.create_app`)."""

    def public_base(request: Request) -> tuple[str, str]:
        return public_scheme(
            request.url.scheme,
            request.client.host if request.client else None,
            request.headers.get("x-forwarded-proto", ""),
            settings.trusted_networks(),
        ), request.headers.get("host") or request.url.netloc

    def timetables(job_ids: list[str]) -> tuple[list[Any] | None, JSONResponse | None]:
        from schedgen_ops.parsing import Timetable

        bad = [j for j in job_ids if not ledger.JOB_ID_RE.match(j)]
        if bad or len(set(job_ids)) != len(job_ids):
            return None, _error(422, "invalid_request", "jobs: give distinct job ids (32 hex digits)")
        with ctx().pool.connection() as conn:
            found = ledger.results_of(conn, job_ids)
        missing = [j for j in job_ids if j not in found]
        if missing:
            return None, _error(
                404, "job_not_found", f"{len(missing)} job(s) unknown, not completed or expired"
            )
        return [Timetable.model_validate(found[j]) for j in job_ids], None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = (
            _env()
            .get_template("index.html.j2")
            .render(
                max_bytes=settings.upload_max_bytes,
                max_size=_size(settings.upload_max_bytes),
                max_pages=settings.upload_max_pages,
                max_files=MAX_FILES,
                messages=MESSAGES,
                semesters=_semester_defaults(),
                default_semester="S1" if dt.date.today().month < 7 else "S2",
            )
        )
        return HTMLResponse(html, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        asset = assets.assets().get(name)
        if asset is None:
            return _error(404, "not_found", "no such file")
        return Response(
            asset.body,
            media_type=asset.media_type,
            headers={"Cache-Control": assets.CACHE_FOREVER, "X-Content-Type-Options": "nosniff"},
        )

    @app.post(
        "/api/calendars/preview",
        response_model=None,
        responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}, **_ERRORS},
        openapi_extra=_JSON_BODY,
        summary="Preview the merged calendar of several jobs (the page)",
    )
    async def calendar_preview(request: Request) -> Response:
        return await handle_json(request, _preview)

    def _preview(body: CalendarRequest) -> Response:
        tts, err = timetables(body.jobs)
        if err is not None:
            return err
        assert tts is not None
        try:
            return JSONResponse(preview(tts, body))
        except SchedgenError as exc:
            return _error(422, exc.code, exc.one_line())

    @app.post(
        "/api/subscriptions",
        status_code=201,
        response_model=None,
        responses={201: {"model": SubscriptionCreated}, **_ERRORS},
        openapi_extra=_JSON_BODY,
        summary="Create a calendar subscription URL over several completed jobs (a capability)",
    )
    async def create_subscription(request: Request) -> Response:
        return await handle_json(request, partial(_subscribe, request=request))

    def _subscribe(body: CalendarRequest, request: Request) -> Response:
        tts, err = timetables(body.jobs)
        if err is not None:
            return err
        assert tts is not None
        choices = Choices.model_validate(body.model_dump(exclude={"jobs"}))
        try:
            build_calendar(tts, choices)  # refuse choices that cannot make a calendar now, not on every poll
        except SchedgenError as exc:
            return _error(422, exc.code, exc.one_line())
        token = new_token()
        with ctx().pool.connection() as conn:
            expires = ledger.insert_subscription(
                conn, token_hash(token), body.jobs, choices.model_dump(mode="json", by_alias=True)
            )
        if expires is None:
            return _error(404, "job_not_found", "a job is unknown, not completed or expired")
        scheme, host = public_base(request)
        path = f"/cal/{token}.ics"
        created = SubscriptionCreated(
            url=f"{scheme}://{host}{path}",
            webcal_url=f"webcal://{host}{path}",
            download_url=f"{path}?download=1",
            expires_at=expires,
        )
        return JSONResponse(
            created.model_dump(mode="json"),
            status_code=201,
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/cal/{token}.ics", include_in_schema=False)
    def subscription_calendar(token: str, download: int = 0) -> Response:
        if not TOKEN_RE.match(token):
            return _error(404, "subscription_not_found", "no such calendar")
        with ctx().pool.connection() as conn:
            sub = ledger.get_subscription(conn, token_hash(token))
            found = ledger.results_of(conn, sub.job_ids) if sub else {}
        if sub is None:
            return _error(404, "subscription_not_found", "no such calendar")
        if len(found) != len(sub.job_ids):
            return _error(
                410, "subscription_expired", "the timetables behind this calendar are no longer kept"
            )
        from schedgen_ops.parsing import Timetable

        tts = [Timetable.model_validate(found[j]) for j in sub.job_ids]
        body = build_calendar(tts, Choices.model_validate(sub.choices), dtstamp=sub.created_at)
        headers = {
            "Cache-Control": "private, max-age=300",
            "Referrer-Policy": "no-referrer",
            "X-Robots-Tag": "noindex",
            "X-Content-Type-Options": "nosniff",
        }
        if download:
            headers["Content-Disposition"] = 'attachment; filename="up-timetable.ics"'
        return Response(body, media_type="text/calendar; charset=utf-8", headers=headers)
