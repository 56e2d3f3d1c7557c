"""The envelope every HTTP request passes through: request id, client id, rate limit, metrics and the
access log. Pure ASGI (no per-request task group), and the only place rate limits are applied.

A job-status poll (`GET /api/jobs/{id}`, which a waiting client repeats) is answered here, after the
client is identified and its limit spent, without going through the router, by the route's own
`job_reads.status_answer` (a finished job's from this process's cache, a queued one's from the
queued-row cache, any other from the ledger): the same bytes and headers (`StatusAnswer.response`),
failing as the route would (`api_errors.answer_exception`). Routing plus FastAPI's request handling were
most of a cached poll's cost. A poll sends the Redis reads its answer needs in the round trip that
spends its rate limit (`job_reads.StatusPrefetch`, `RateLimits.hit_with`), so a poll of a queued row this
process caches costs one Redis round trip, as a finished job's does (docs/PERFORMANCE.md,
"Round 4")."""

from __future__ import annotations

import logging
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from schedgen_ops.service import metrics
from schedgen_ops.service.api_errors import ApiError, answer_exception, error_response
from schedgen_ops.service.api_state import ApiState
from schedgen_ops.service.auth import identify
from schedgen_ops.service.job_reads import StatusPrefetch, status_answer, status_prefetch
from schedgen_ops.service.logs import client_id_var, request_id_var
from schedgen_ops.service.settings import ServiceSettings

log = logging.getLogger("schedgen.api")

EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics")  # never rate limited, never look at an API key
STATUS_PREFIX = "/api/jobs/"
STATUS_TEMPLATE = "/api/jobs/{job_id}"  # the route `_job_status` answers for (its metrics label)
_MAX_METRIC_CHILDREN = 512  # labelled metric children kept per process (methods come from clients)
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class Envelope:
    """ASGI middleware around ``api`` (whose `ApiState` it reads and whose routes label the metrics)."""

    def __init__(self, app: ASGIApp, *, api: FastAPI, settings: ServiceSettings) -> None:
        self.app = app
        self.api = api
        self.trusted = settings.trusted_networks()  # parsed once, not per request
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}  # metrics.labels() per label set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else _new_request_id()
        rid_token = request_id_var.set(request_id)
        cid_token = client_id_var.set(None)
        path = scope["path"]
        extra_headers: dict[str, str] = {"X-Request-ID": request_id}
        status = {"code": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["started"] = True
                _add_missing(message, extra_headers)
            await send(message)

        try:
            early: Response | None = None
            template: str | None = None
            try:
                prefetch = self._status_prefetch(request, path)
                early = await self._admit(request, path, extra_headers, prefetch)
                if early is None:
                    early = await self._job_status(request, path, prefetch)
                    template = STATUS_TEMPLATE if early is not None else None
            except ApiError as exc:
                early = error_response(exc.status, exc.code, exc.message, exc.headers)
            if early is not None:
                await early(scope, receive, send_wrapper)
            else:
                try:
                    await self.app(scope, receive, send_wrapper)
                except Exception:
                    log.exception("unhandled error")
                    if status["started"]:
                        raise
                    await error_response(500, "internal_error", "internal error")(
                        scope, receive, send_wrapper
                    )
            self._record(request, path, template, int(status["code"]), time.perf_counter() - started)
        finally:
            request_id_var.reset(rid_token)
            client_id_var.reset(cid_token)

    async def _admit(
        self, request: Request, path: str, extra_headers: dict[str, str], prefetch: StatusPrefetch | None
    ) -> Response | None:
        """Identify the client and spend its rate limit (with ``prefetch``'s reads in the same round trip):
        None to go on, else the refusal to send."""
        state: ApiState | None = None if path.startswith(EXEMPT_PATHS) else self.api.state.service
        client = await identify(request, self.trusted, state)
        client_id_var.set(client)
        if state is None:
            return None
        category = _category(request.method, path)
        if prefetch is None:
            decision = await state.limits.hit(category, client)
        else:
            decision, prefetch.replies = await state.limits.hit_with(category, client, prefetch.commands)
        if decision is None:
            return None
        extra_headers.update(decision.headers())
        if decision.allowed:
            return None
        if category == "upload":
            metrics.UPLOADS.labels("rate_limited").inc()
        return error_response(429, "rate_limited", f"too many {category} requests; retry later")

    def _status_prefetch(self, request: Request, path: str) -> StatusPrefetch | None:
        """For a status poll: the Redis reads its answer needs, to send with the rate limit's."""
        job_id = _status_job_id(request, path)
        return None if job_id is None else status_prefetch(self.api.state.service, job_id)

    async def _job_status(
        self, request: Request, path: str, prefetch: StatusPrefetch | None
    ) -> Response | None:
        """A job-status poll's answer (what the route would send), else None for a request to route on."""
        job_id = _status_job_id(request, path)
        if job_id is None:
            return None
        try:
            answer = await status_answer(self.api.state.service, job_id, prefetch)
        except Exception as exc:  # answered as the route's handlers answer it
            return await answer_exception(request, exc)
        return answer.response(request.headers.get("if-none-match"))

    def _record(self, request: Request, path: str, template: str | None, code: int, elapsed: float) -> None:
        if template is None:
            template = _route_template(self.api, request)
        method = request.method
        children = self._children.get((method, template, code))
        if children is None:
            children = (
                metrics.HTTP_REQUESTS.labels(method, template, str(code)),
                metrics.HTTP_LATENCY.labels(method, template),
            )
            if len(self._children) < _MAX_METRIC_CHILDREN:
                self._children[(method, template, code)] = children
        children[0].inc()
        children[1].observe(elapsed)
        if not path.startswith(("/healthz", "/metrics")):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "route": template,
                    "status": code,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )


def _status_job_id(request: Request, path: str) -> str | None:
    """The job id of a `GET /api/jobs/{id}` poll, else None (not this route: /api/jobs/ itself, .../events,
    .../calendar.ics, another method)."""
    if request.method != "GET" or not path.startswith(STATUS_PREFIX):
        return None
    job_id = path[len(STATUS_PREFIX) :]
    return job_id if job_id and "/" not in job_id else None


class _RequestIds:
    """Request ids of this process: 16 random hex digits (new per process) and a 16-digit counter, the same
    32 hex digits as a uuid4 without a ``urandom`` call per request (it correlates logs; it is no secret)."""

    def __init__(self) -> None:
        self.pid = -1
        self.prefix = ""
        self.count = 0

    def __call__(self) -> str:
        if self.pid != os.getpid():  # a forked child must not repeat its parent's ids
            self.pid, self.prefix, self.count = os.getpid(), secrets.token_hex(8), 0
        self.count += 1
        return f"{self.prefix}{self.count:016x}"


_new_request_id = _RequestIds()


def _add_missing(message: Message, extra: dict[str, str]) -> None:
    """Append ``extra`` headers the response does not already carry (names compared case-insensitively)."""
    raw: list[tuple[bytes, bytes]] = list(message.get("headers", ()))
    present = {name.lower() for name, _ in raw}
    for key, value in extra.items():
        name = key.lower().encode("latin-1")
        if name not in present:
            raw.append((name, value.encode("latin-1")))
    message["headers"] = raw


def _route_template(app: FastAPI, request: Request) -> str:
    """The matched route's path template (bounded label values), also for requests refused before routing."""
    route = request.scope.get("route")
    if route is not None:
        return str(getattr(route, "path", "unmatched"))
    for candidate in _flat_routes(app.router.routes):
        match, _ = candidate.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(candidate, "path", "unmatched"))
    return "unmatched"


def _flat_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes in matching order, also inside included routers: FastAPI >= 0.137 keeps an included
    `APIRouter` as one lazy entry (its ``original_router``) instead of copying its routes into the app's.
    The api includes its routers without a prefix, so their routes match the request's path as they are."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _flat_routes(included.routes)
        else:
            yield route


def _category(method: str, path: str) -> str:
    if method == "POST" and path.rstrip("/") == "/api/uploads":
        return "upload"
    if method == "GET" and path.startswith("/api/jobs/") and path.count("/") == 3:
        return "status"
    return "requests"
