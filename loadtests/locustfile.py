"""Locust users and the load shape for `schedgen loadtest` (run as ``python -m locust`` only).

Never import this into the CLI process: locust monkey-patches the standard library. Everything the
run needs comes from the JSON file named by ``SCHEDGEN_LOADTEST_CONFIG`` (written by the CLI): the
scaled scenario, the pre-generated PDF pool, one API key per simulated client, and where to write
raw records (one CSV row per request, one JSON line per job event) that the CLI turns into the summary.

Users:
- UploadUser: a student session: upload a timetable PDF (unique bytes, so no cache can help) ->
  poll its status with backoff -> fetch its events and its ICS calendar -> think -> next session.
  Moves to a fresh API key before the per-client upload limit would trip.
- StatusUser: polls the status of already completed jobs (seeded by the CLI before the run).
- HealthUser: a load balancer probing /healthz.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import random
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, LoadTestShape, between, events, task
from urllib3.filepost import encode_multipart_formdata

from schedgen_ops.ops.loadtest.scenarios import Scenario, users_at

CONFIG: dict[str, Any] = json.loads(Path(os.environ["SCHEDGEN_LOADTEST_CONFIG"]).read_text())
SCENARIO = Scenario.from_dict(CONFIG["scenario"])
POLL = CONFIG["poll"]

UPLOAD = "POST /api/uploads"
STATUS = "GET /api/jobs/[id]"
EVENTS = "GET /api/jobs/[id]/events"
CALENDAR = "GET /api/jobs/[id]/calendar.ics"
HEALTH = "GET /healthz"


class Pool:
    """The pre-generated PDFs; every upload gets unique bytes (a trailing PDF comment)."""

    def __init__(self, directory: Path) -> None:
        self.files = [(path.name, path.read_bytes()) for path in sorted(directory.glob("*.pdf"))]
        if not self.files:
            raise RuntimeError(f"no PDFs in the pool {directory}")

    def pick(self) -> tuple[str, bytes]:
        name, data = random.choice(self.files)
        return name, data + b"\n%schedgen-loadtest " + uuid.uuid4().hex.encode() + b"\n"


class Keys:
    """One API key per simulated client, handed out in order; wraps around (and says so) if exhausted."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self._next = itertools.count()
        self.reused = 0

    def take(self) -> str:
        index = next(self._next)
        if index >= len(self.keys):
            self.reused += 1
        return self.keys[index % len(self.keys)]


POOL = Pool(Path(CONFIG["pool_dir"])) if "upload" in SCENARIO.mix else None
KEYS = Keys(json.loads(Path(CONFIG["keys_file"]).read_text()))
SEED_JOBS: list[dict[str, str]] = CONFIG.get("seed_jobs", [])


class Recorder:
    """Raw records for the CLI's analysis, plus the watchdog that ends a run against a dead api."""

    def __init__(self) -> None:
        self.t0 = time.time()
        self.last_ok = self.t0
        self.connection_errors = 0
        self._requests = Path(CONFIG["requests_csv"]).open("w", newline="")  # noqa: SIM115 - open for the run
        self._writer = csv.writer(self._requests)
        self._jobs = Path(CONFIG["jobs_jsonl"]).open("w")  # noqa: SIM115 - open for the run

    def start(self) -> None:
        self.t0 = self.last_ok = time.time()
        self._writer.writerow([f"#t0={self.t0:.6f}"])

    def request(self, name: str, ms: float, ok: bool, status: int) -> None:
        now = time.time()
        self._writer.writerow([f"{now - self.t0:.4f}", name, f"{ms:.2f}", "1" if ok else "0", status])
        if ok:
            self.last_ok = now
        elif status == 0:
            self.connection_errors += 1

    def job(self, event: str, job_id: str, **fields: Any) -> None:
        self._jobs.write(json.dumps({"event": event, "job_id": job_id, "t": time.time(), **fields}) + "\n")
        self._jobs.flush()

    def flush(self) -> None:
        self._requests.flush()

    def close(self) -> None:
        self._requests.flush()
        self._requests.close()
        self._jobs.close()


RECORDER = Recorder()


@events.test_start.add_listener
def _on_start(environment: Any, **_: Any) -> None:
    RECORDER.start()
    gevent.spawn(_watchdog, environment)


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    exception: Exception | None = None,
    response: Any = None,
    **_: Any,
) -> None:
    status = int(getattr(response, "status_code", 0) or 0) if response is not None else 0
    RECORDER.request(name, response_time, exception is None, status)


@events.quitting.add_listener
def _on_quit(environment: Any, **_: Any) -> None:
    Path(CONFIG["keys_used_file"]).write_text(json.dumps({"reused": KEYS.reused}))
    RECORDER.close()


def _watchdog(environment: Any) -> None:
    """Stop the run when the api has answered nothing for ``abort_after_s`` (it is down: fail fast)."""
    limit = float(CONFIG["abort_after_s"])
    while True:
        gevent.sleep(0.5)
        RECORDER.flush()  # so a crash or a kill still leaves the records up to now
        silent = time.time() - RECORDER.last_ok
        if silent > limit and RECORDER.connection_errors > 0:
            Path(CONFIG["abort_file"]).write_text(
                f"the api stopped answering: no successful request for {silent:.0f}s "
                f"({RECORDER.connection_errors} connection errors)"
            )
            environment.runner.quit()
            return


def _finished_at(body: dict[str, Any]) -> float:
    """When the service says the job ended (same machine, same clock), else now (the poll that saw it)."""
    value = body.get("finished_at")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()


def _retry_after(resp: Any) -> float | None:
    """The answer's Retry-After in seconds (at most 60), or None when it sends none."""
    value = resp.headers.get("Retry-After") if resp.headers else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return min(seconds, 60.0) if seconds is not None and seconds > 0 else None


def _why(resp: Any) -> str:
    """A failure's reason for locust's report: the HTTP status and error code, or the connection error."""
    if not resp.status_code:
        return f"no answer: {resp.error!r}"[:200]
    try:
        code = resp.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = ""
    return f"HTTP {resp.status_code} {code}".strip()


class ClientUser(FastHttpUser):
    """Common parts: an API key per simulated client, sent the way the service expects."""

    abstract = True
    network_timeout = float(CONFIG["request_timeout_s"])
    connection_timeout = float(CONFIG["request_timeout_s"])
    wait_time = between(*SCENARIO.think_s)

    def on_start(self) -> None:
        self.key = KEYS.take()
        self.uploads_with_key = 0
        # As a browser does: the last answer per job and its ETag, revalidated with If-None-Match (304).
        self.seen: dict[str, tuple[str, dict[str, Any]]] = {}
        self.retry_after_s: float | None = None  # the last status answer's Retry-After (queued jobs)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {CONFIG["auth_header"]: CONFIG["auth_prefix"] + (key or self.key)}

    def get_status(self, job_id: str, key: str) -> dict[str, Any] | None:
        """The job's status; a 304 (the ETag still matches) is the answer seen before, as in a browser."""
        headers = self.auth(key)
        known = self.seen.get(job_id)
        if known is not None:
            headers["If-None-Match"] = known[0]
        with self.client.get(
            f"/api/jobs/{job_id}", name=STATUS, headers=headers, catch_response=True
        ) as resp:
            self.retry_after_s = _retry_after(resp)
            if resp.status_code == 304 and known is not None:
                return known[1]
            if resp.status_code != 200:
                resp.failure(_why(resp))
                return None
            try:
                body: dict[str, Any] = resp.json()
            except ValueError:
                resp.failure("status answer is not JSON")
                return None
            etag = resp.headers.get("ETag") if resp.headers else None
            if etag:
                if len(self.seen) >= 64:  # a user follows a handful of jobs: keep the map small
                    self.seen.pop(next(iter(self.seen)))
                self.seen[job_id] = (etag, body)
            return body


class UploadUser(ClientUser):
    """A student: upload a timetable, wait for it, read its events and calendar."""

    weight = SCENARIO.mix.get("upload", 0) or 1

    @task
    def session(self) -> None:
        assert POOL is not None
        if self.uploads_with_key >= int(CONFIG["uploads_per_key"]):
            self.key = KEYS.take()
            self.uploads_with_key = 0
        key = self.key
        filename, pdf = POOL.pick()
        body, content_type = encode_multipart_formdata({"file": (filename, pdf, "application/pdf")})
        headers = {**self.auth(key), "Content-Type": content_type}
        started = time.time()
        with self.client.post(
            "/api/uploads", data=body, headers=headers, name=UPLOAD, catch_response=True
        ) as resp:
            self.uploads_with_key += 1
            remaining = resp.headers.get("X-RateLimit-Remaining") if resp.headers else None
            if remaining is not None and remaining.isdigit() and int(remaining) <= 0:
                self.uploads_with_key = int(CONFIG["uploads_per_key"])
            if resp.status_code != 202:
                resp.failure(_why(resp))
                return
            try:
                job_id = resp.json()["job_id"]
            except (ValueError, KeyError, TypeError):
                resp.failure("upload answer has no job_id")
                return
        RECORDER.job("uploaded", job_id, key=key, file=filename)
        body = self.wait_for(job_id, key, started)
        if body is not None and body.get("status") == "completed":
            self.client.get(f"/api/jobs/{job_id}/events", name=EVENTS, headers=self.auth(key))
            # Lectures repeat weekly: a calendar needs their semester (as the web client sends it).
            query = "?semester=S2" if body.get("kind") == "lectures" else ""
            self.client.get(f"/api/jobs/{job_id}/calendar.ics{query}", name=CALENDAR, headers=self.auth(key))

    def wait_for(self, job_id: str, key: str, started: float) -> dict[str, Any] | None:
        """Poll with exponential backoff until the job ends or ``POLL.timeout_s`` passes."""
        delay = float(POLL["initial_s"])
        deadline = started + float(POLL["timeout_s"])
        self.retry_after_s = None
        while time.time() < deadline:
            # The service's Retry-After (queued jobs: by position) when it sent one, else the backoff.
            gevent.sleep(self.retry_after_s if self.retry_after_s is not None else delay)
            delay = min(delay * 1.5, float(POLL["max_s"]))
            body = self.get_status(job_id, key)
            if body is None:
                continue
            status = body.get("status")
            if status in ("completed", "failed"):
                RECORDER.job(status, job_id, completion_ms=round((_finished_at(body) - started) * 1000, 1))
                return body
        return None


class StatusUser(ClientUser):
    """Checks on jobs that already exist (seeded before the run)."""

    weight = SCENARIO.mix.get("status", 0) or 1

    @task
    def check(self) -> None:
        if not SEED_JOBS:
            return
        job = random.choice(SEED_JOBS)
        self.get_status(job["job_id"], job["key"] if CONFIG["status_owner_key"] else self.key)


class HealthUser(FastHttpUser):
    """A load balancer's liveness probe."""

    weight = SCENARIO.mix.get("health", 0) or 1
    wait_time = between(1.0, 2.0)
    network_timeout = float(CONFIG["request_timeout_s"])
    connection_timeout = float(CONFIG["request_timeout_s"])

    @task
    def probe(self) -> None:
        self.client.get("/healthz", name=HEALTH)


class PlanShape(LoadTestShape):
    """The scenario's stages (already scaled by the CLI): users and spawn rate at each moment."""

    def tick(self) -> tuple[int, float] | None:
        return users_at(SCENARIO, self.get_run_time())
