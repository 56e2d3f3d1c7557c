"""A tiny stand-in for the parsing service's public API, for tests of the load-test machinery itself.

Run as ``python tests/loadtest/mimic_api.py PORT [--slow-upload-ms N]``. Jobs complete after a short
delay (a real parse of the uploaded PDF in a thread); keys must start with ``sgk_``; /metrics
exposes this process's RSS the way prometheus_client does. Only the contract the load test relies on.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import time
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from schedgen_ops.parsing.api import parse_pdf

app = FastAPI()
JOBS: dict[str, dict[str, Any]] = {}
SLOW_UPLOAD_S = 0.0


def _authorized(request: Request) -> bool:
    return request.headers.get("x-api-key", "").startswith("sgk_")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/api/uploads")
async def upload(request: Request, file: UploadFile) -> Response:
    if not _authorized(request):
        return JSONResponse({"error": {"code": "unauthorized", "message": "key"}}, status_code=401)
    data = await file.read()
    job_id = secrets.token_hex(16)
    JOBS[job_id] = {"status": "queued", "events": []}
    if SLOW_UPLOAD_S:
        await asyncio.sleep(SLOW_UPLOAD_S)

    async def work() -> None:
        await asyncio.sleep(0.05)
        JOBS[job_id]["status"] = "processing"
        timetable = await asyncio.to_thread(parse_pdf, data)
        JOBS[job_id].update(status="completed", events=[e.model_dump(mode="json") for e in timetable.events])

    asyncio.get_running_loop().create_task(work())
    return JSONResponse(
        {"job_id": job_id, "status": "queued", "status_url": f"/api/jobs/{job_id}"},
        status_code=202,
        headers={"X-RateLimit-Remaining": "9"},
    )


@app.get("/api/jobs/{job_id}")
async def status(job_id: str) -> Response:
    job = JOBS.get(job_id)
    if job is None:
        return JSONResponse({"error": {"code": "not_found", "message": job_id}}, status_code=404)
    return JSONResponse({"job_id": job_id, "status": job["status"]})


@app.get("/api/jobs/{job_id}/events")
async def events(job_id: str) -> Response:
    job = JOBS.get(job_id)
    if job is None or job["status"] != "completed":
        return JSONResponse({"error": {"code": "not_found", "message": job_id}}, status_code=404)
    return JSONResponse({"events": job["events"]})


@app.get("/api/jobs/{job_id}/calendar.ics")
async def calendar(job_id: str) -> Response:
    if job_id not in JOBS:
        return JSONResponse({"error": {"code": "not_found", "message": job_id}}, status_code=404)
    return Response("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", media_type="text/calendar")


@app.get("/metrics")
async def metrics() -> PlainTextResponse:
    with open("/proc/self/statm") as handle:
        rss = int(handle.read().split()[1]) * 4096
    text = (
        "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
        "# TYPE process_resident_memory_bytes gauge\n"
        f"process_resident_memory_bytes {float(rss)}\n"
        "# HELP mimic_up_seconds Uptime.\n# TYPE mimic_up_seconds gauge\n"
        f"mimic_up_seconds {time.monotonic()}\n"
    )
    return PlainTextResponse(text)


if __name__ == "__main__":
    if "--slow-upload-ms" in sys.argv:
        SLOW_UPLOAD_S = float(sys.argv[sys.argv.index("--slow-upload-ms") + 1]) / 1000
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
