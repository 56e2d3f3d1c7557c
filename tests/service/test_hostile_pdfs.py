"""The hostile-PDF corpus (tests/parsing/hostile.py) against a real api, worker, Postgres and Redis.

For every file: its error code, how long it took, the peak memory of the process that parsed it (the
api's pre-accept sandbox or the worker's parse sandbox, from their log lines: the kernel's VmHWM for
that one request), that it failed once and was not retried, and that the api answered /healthz in
under a second the whole time. Then a real timetable still goes through.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
from stackkit import Stack

from tests.parsing import hostile

PARSE_TIMEOUT_S = 2.0
PARSE_MEMORY_MB = 256
PREACCEPT_MEMORY_MB = 192  # the default
ENV = {
    "SCHEDGEN_PARSE_TIMEOUT_S": str(PARSE_TIMEOUT_S),
    "SCHEDGEN_PARSE_MEMORY_MB": str(PARSE_MEMORY_MB),
    "SCHEDGEN_PARSE_MAX_OPERATIONS": "20000",  # floods reach the cap in well under a second
    "SCHEDGEN_RATE_UPLOADS": "100000/hour",
}


class HealthProbe(threading.Thread):
    """GET /healthz every 50 ms; remembers the slowest answer and any failure."""

    def __init__(self, base_url: str) -> None:
        super().__init__(daemon=True)
        self.base_url = base_url
        self.stop = threading.Event()
        self.slowest = 0.0
        self.count = 0
        self.failures: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError as exc:
                    status = 0
                    self.failures.append(repr(exc))
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.count += 1
                if status != 200:
                    self.failures.append(f"status {status}")
                self.stop.wait(0.05)


def _log_entries(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue
    return entries


def _sandbox_children(pid: int, preload: str) -> list[psutil.Process]:
    return [
        child
        for child in psutil.Process(pid).children(recursive=True)
        if "schedgen_ops.parsing.sandbox_child" in child.cmdline() and preload in child.cmdline()
    ]


def _wait_for_parse_sandbox(worker_pid: int) -> psutil.Process:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = _sandbox_children(worker_pid, "parse")
        if children and children[0].memory_info().rss > 30 * 2**20:  # pdfminer and the parser loaded
            return children[0]
        time.sleep(0.2)
    raise AssertionError("the worker did not start its parse sandbox before its first job")


def _seconds(start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def test_hostile_pdfs_fail_alone_fast_and_small_while_the_api_answers(
    service_stack: Callable[..., Stack], up_pdf: Callable[[str], Path]
) -> None:
    stack = service_stack(**ENV)
    worker = stack.start_worker(1)
    # The warm-up: the parser is loaded (in the worker's sandbox child) before any job exists.
    _wait_for_parse_sandbox(worker.pid)
    probe = HealthProbe(stack.base_url)
    probe.start()
    refused: dict[str, float] = {}
    jobs: dict[str, str] = {}
    try:
        for case in hostile.CASES:
            started = time.monotonic()
            response = stack.upload(case.build(), filename="hostile.pdf")
            if case.stage == "check":
                assert response.status_code == 422, (case.name, response.text)
                assert response.json()["error"]["code"] == case.code, (case.name, response.text)
                refused[case.name] = time.monotonic() - started
            else:
                assert response.status_code == 202, (case.name, response.text)
                jobs[case.name] = response.json()["job_id"]
        done = {name: stack.wait_done(job_id, timeout=90) for name, job_id in jobs.items()}
        rss = {
            "api": psutil.Process(stack.api.pid).memory_info().rss if stack.api else 0,
            "worker": max(p.memory_info().rss for p in psutil.Process(worker.pid).children()),
        }
    finally:
        probe.stop.set()
        probe.join(timeout=15)

    assert probe.failures == [] and probe.count > 20
    assert probe.slowest < 1.0, f"/healthz took {probe.slowest:.2f} s while hostile files were parsed"
    assert max(refused.values()) < 5.0, refused

    api_log = _log_entries(stack.api.output() if stack.api else "")
    checks = [e for e in api_log if e.get("msg") == "upload refused by the pre-accept check"]
    assert sorted(e["error_code"] for e in checks) == sorted(
        c.code for c in hostile.CASES if c.stage == "check"
    )
    for entry in checks:
        assert 0 < entry["check_peak_rss_mb"] <= PREACCEPT_MEMORY_MB, entry
        assert entry["check_wall_s"] < 5.0, entry

    parses = {e["job_id"]: e for e in _log_entries(worker.output()) if "parse_peak_rss_mb" in e}
    for name, job in done.items():
        case = hostile.BY_NAME[name]
        assert job["status"] == "failed" and job["error"]["code"] == case.code, (name, job)
        assert job["attempts"] == 1, (name, job)  # final: a limit, a timeout or a bad file is never retried
        assert "Traceback" not in job["error"]["message"] and "Error:" not in job["error"]["message"]
        wall = _seconds(job["started_at"], job["finished_at"])
        assert wall < PARSE_TIMEOUT_S + 2.0, (name, wall)
        peak = parses[job["job_id"]]["parse_peak_rss_mb"]
        assert peak is None or 0 < peak <= PARSE_MEMORY_MB, (name, peak)  # None: killed, never reported
    assert done["font cmap memory bomb"]["error"]["message"].endswith("more memory than a parse may use")
    assert done["font cmap CPU bomb"]["error"]["message"] == "parsing took longer than the 2 s limit"

    # The api and the worker themselves never parsed: a few hundred MB at most, whatever they were sent.
    assert rss["api"] < 300 * 2**20 and rss["worker"] < 300 * 2**20, rss
    # And the service goes on: a real timetable after all of that.
    job = stack.upload(up_pdf("UP_EXAM_SS.pdf").read_bytes(), filename="UP_EXAM_SS.pdf").json()
    assert stack.wait_done(job["job_id"])["status"] == "completed"


def test_a_failure_that_is_not_the_files_shows_clients_fixed_text_only(
    service_stack: Callable[..., Stack], up_pdf: Callable[[str], Path]
) -> None:
    """The stored upload turns unreadable (here: a directory): retried, then failed `processing_error`
    with a fixed sentence; the exception text is in the worker's log, never in the job."""
    stack = service_stack()
    job = stack.upload(up_pdf("UP_EXAM_SS.pdf").read_bytes(), filename="UP_EXAM_SS.pdf").json()
    stored = stack.workdir / "uploads" / f"{job['job_id']}.pdf"
    stored.unlink()
    stored.mkdir()
    worker = stack.start_worker(1)
    done = stack.wait_done(job["job_id"], timeout=90)
    assert done["status"] == "failed" and done["attempts"] == 3
    assert done["error"] == {
        "code": "processing_error",
        "message": "the server could not process the file; upload it again later",
    }
    assert "IsADirectoryError" in worker.output()  # the detail is kept where operators look
