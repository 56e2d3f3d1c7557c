"""The api's error envelope: `ApiError`, the JSON body every refusal carries, and the handlers that turn
each kind of exception into it, so a client never sees a stack trace or FastAPI's own error shapes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.logs import request_id_var
from schedgen_ops.service.schemas import ErrorResponse

log = logging.getLogger("schedgen.api")


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message", "request_id"}}``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "request_id": request_id_var.get()}}
    return JSONResponse(body, status_code=status, headers=headers)


# The error answers the api's routes document in OpenAPI (the body is always `ErrorResponse`).
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (401, "Invalid API key or missing ops token."),
        (404, "Unknown job."),
        (409, "The job has not completed."),
        (413, "File too large."),
        (415, "Not a PDF / not multipart."),
        (422, "Invalid PDF or request (code says which)."),
        (429, "Rate limited; see Retry-After."),
        (503, "A dependency (database, storage) is unavailable."),
    )
}


async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid request')}")


async def _schedgen_error(request: Request, exc: SchedgenError) -> JSONResponse:
    status = 503 if exc.code in ("database_unavailable", "storage_unavailable") else 422
    return error_response(status, exc.code, exc.one_line())


async def _db_error(request: Request, exc: psycopg.Error) -> JSONResponse:
    log.warning("database error", extra={"error": type(exc).__name__})
    return _database_unavailable()


async def _pool_timeout(request: Request, exc: PoolTimeout) -> JSONResponse:
    return _database_unavailable()


def _database_unavailable() -> JSONResponse:
    return error_response(503, "database_unavailable", "the job database is unavailable; retry shortly")


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error")
    return error_response(500, "internal_error", "internal error")


#: Every exception a route can raise and its answer, most specific class first.
_HANDLERS: tuple[tuple[type[Exception], Callable[[Request, Any], Awaitable[JSONResponse]]], ...] = (
    (ApiError, _api_error),
    (StarletteHTTPException, _http_error),
    (RequestValidationError, _validation_error),
    (SchedgenError, _schedgen_error),
    (PoolTimeout, _pool_timeout),
    (psycopg.Error, _db_error),
    (Exception, _unhandled),
)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every exception a route can raise with the envelope (most specific class wins)."""
    for cls, handler in _HANDLERS:
        app.exception_handler(cls)(handler)


async def answer_exception(request: Request, exc: Exception) -> JSONResponse:
    """The answer a route's handler would give ``exc``: for the envelope, which answers some requests
    without the router (`middleware.Envelope`), so they fail exactly as a routed request would."""
    handler = next(handler for cls, handler in _HANDLERS if isinstance(exc, cls))
    return await handler(request, exc)
