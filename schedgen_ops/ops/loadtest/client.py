"""The few plain HTTP calls the CLI makes around a locust run: seed jobs before it, drain jobs after it.

Seeds give status-only users real, completed jobs to poll (and prove that a worker is processing
before any load starts); the drain follows jobs still in flight when the load stopped, so the
completion rate counts what the service really finished rather than when locust happened to stop.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from schedgen_ops.errors import SchedgenError


class ApiClient:
    """Minimal client of the parsing service's public API (auth header as the service expects)."""

    def __init__(self, url: str, *, auth_header: str, auth_prefix: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.auth_header = auth_header
        self.auth_prefix = auth_prefix
        self.http = httpx.Client(base_url=url, timeout=timeout_s)

    def close(self) -> None:
        self.http.close()

    def headers(self, key: str) -> dict[str, str]:
        return {self.auth_header: self.auth_prefix + key}

    def upload(self, key: str, filename: str, pdf: bytes) -> str:
        response = self.http.post(
            "/api/uploads", headers=self.headers(key), files={"file": (filename, pdf, "application/pdf")}
        )
        if response.status_code != 202:
            raise SchedgenError(
                f"seed upload was refused: {response.status_code} {response.text[:200]}",
                code="seed_failed",
                hint="check the api logs; the load test needs uploads to work",
            )
        job_id: str = response.json()["job_id"]
        return job_id

    def job(self, key: str, job_id: str) -> dict[str, Any] | None:
        """The job's status document, or None when it cannot be read right now."""
        try:
            response = self.http.get(f"/api/jobs/{job_id}", headers=self.headers(key))
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def status(self, key: str, job_id: str) -> str | None:
        body = self.job(key, job_id)
        value = body.get("status") if body else None
        return str(value) if value is not None else None


def seed_jobs(
    client: ApiClient, keys: list[str], pdfs: list[tuple[str, bytes]], *, timeout_s: float = 60.0
) -> list[dict[str, str]]:
    """Upload one PDF per key and wait until all complete; a stuck queue is a clear error."""
    jobs = [
        {
            "job_id": client.upload(key, name, data + b"\n%seed " + str(time.time()).encode() + b"\n"),
            "key": key,
        }
        for key, (name, data) in zip(keys, pdfs, strict=False)
    ]
    deadline = time.monotonic() + timeout_s
    pending = {job["job_id"]: job["key"] for job in jobs}
    while pending and time.monotonic() < deadline:
        for job_id, key in list(pending.items()):
            status = client.status(key, job_id)
            if status == "completed":
                del pending[job_id]
            elif status == "failed":
                raise SchedgenError(
                    f"seed job {job_id} failed to parse", code="seed_failed", hint="check the worker logs"
                )
        time.sleep(0.5)
    if pending:
        raise SchedgenError(
            f"{len(pending)} of {len(jobs)} seed jobs did not complete within {timeout_s:.0f}s",
            code="workers_not_processing",
            hint="are the workers running? (`schedgen status`)",
        )
    return jobs


def drain(client: ApiClient, jobs: dict[str, dict[str, Any]], *, timeout_s: float) -> int:
    """Follow jobs that were still queued/processing when the load stopped; returns how many ended.

    Updates ``jobs`` in place: status and ``completion_ms``, from the upload to the job's own
    ``finished_at`` (same machine, same clock: load tests only target loopback), or to the poll that
    saw it finish when the service does not say.
    """
    pending = [
        job for job in jobs.values() if job.get("status") not in ("completed", "failed") and job.get("key")
    ]
    ended = 0
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for job in list(pending):
            body = client.job(job["key"], job["job_id"]) or {}
            status = body.get("status")
            if status in ("completed", "failed"):
                job["status"] = status
                job["completion_ms"] = round((_finished_at(body) - job["uploaded_at"]) * 1000, 1)
                job["drained"] = True
                pending.remove(job)
                ended += 1
        if pending:
            time.sleep(1.0)
    return ended


def _finished_at(body: dict[str, Any]) -> float:
    """The job's ``finished_at`` as epoch seconds (now when absent or unreadable)."""
    value = body.get("finished_at")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
