"""The deploy health gate: api ready, workers alive, and one canary upload parsed end to end.

A deploy only counts when the new release does real work: every api replica answers /readyz with 200,
at least one worker has a fresh heartbeat, and a generated sample PDF goes upload -> queued ->
completed with events. Each step has its own deadline and reports what it saw when it fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

HEARTBEAT_MAX_AGE_S = 60.0
T = TypeVar("T")


class GateFailure(Exception):
    """The gate's verdict: which check failed and what it saw."""

    def __init__(self, check: str, detail: str):
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


@dataclass
class GateReport:
    checks: dict[str, str] = field(default_factory=dict)
    canary_job: str | None = None
    canary_events: int | None = None
    duration_s: float = 0.0


def sample_pdf(seed: int = 7) -> bytes:
    """A small generated UP-format lecture timetable (never real student data)."""
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    return render_pdf(generate_timetable("lectures", seed=seed, n_rows=4))


class NotYet(Exception):
    """An answer that is not yet the one a gate step waits for; its text is the step's last answer."""


def poll(check: str, timeout_s: float, attempt: Callable[[], T], failure: Callable[[str], str]) -> T:
    """Retry ``attempt`` every 0.5 s until it returns; after ``timeout_s`` raise `GateFailure` for
    ``check`` with ``failure(last answer)`` (a `NotYet`'s text, or the HTTP error)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return attempt()
        except NotYet as exc:
            last = str(exc)
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise GateFailure(check, failure(last))
        time.sleep(0.5)


def wait_ready(client: httpx.Client, base_url: str, timeout_s: float) -> dict[str, Any]:
    """Poll /readyz until 200; raise `GateFailure` with the last answer's per-dependency detail."""

    def ready() -> dict[str, Any]:
        response = client.get(f"{base_url}/readyz", timeout=5)
        if response.status_code != 200:
            raise NotYet(f"HTTP {response.status_code} {response.text[:300]}")
        body: dict[str, Any] = response.json()
        return body

    return poll(
        "api ready",
        timeout_s,
        ready,
        lambda last: f"{base_url}/readyz not ready after {timeout_s:.0f}s ({last})",
    )


def wait_workers(client: httpx.Client, base_url: str, token: str, timeout_s: float) -> int:
    """Poll /api/queue until a worker has a heartbeat younger than HEARTBEAT_MAX_AGE_S; return the count."""

    def alive() -> int:
        response = client.get(
            f"{base_url}/api/queue", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        if response.status_code != 200:
            raise NotYet(f"HTTP {response.status_code} {response.text[:200]}")
        workers = response.json().get("workers", [])
        fresh = [
            w
            for w in workers
            if w.get("heartbeat_age_s") is not None and w["heartbeat_age_s"] < HEARTBEAT_MAX_AGE_S
        ]
        if not fresh:
            raise NotYet(f"{len(workers)} registered worker(s), none with a fresh heartbeat")
        return len(fresh)

    return poll(
        "workers alive", timeout_s, alive, lambda last: f"no live worker after {timeout_s:.0f}s ({last})"
    )


def canary(client: httpx.Client, base_url: str, token: str, timeout_s: float) -> tuple[str, int]:
    """Upload a sample PDF (high priority) and wait until it is parsed; return (job id, event count)."""
    files = {"file": ("canary.pdf", sample_pdf(), "application/pdf")}
    try:
        response = client.post(
            f"{base_url}/api/uploads",
            files=files,
            data={"priority": "high"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise GateFailure("canary upload", f"{type(exc).__name__}: {exc}") from exc
    if response.status_code != 202:
        raise GateFailure("canary upload", f"HTTP {response.status_code} {response.text[:300]}")
    accepted = response.json()
    job_id = accepted["job_id"]
    deadline = time.monotonic() + timeout_s
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            status = client.get(f"{base_url}{accepted['status_url']}", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            status = {}
        if status.get("status") == "completed":
            events = client.get(f"{base_url}{accepted['events_url']}", timeout=10)
            if events.status_code != 200:
                raise GateFailure("canary parse", f"events HTTP {events.status_code} for job {job_id}")
            count = sum(len(t.get("events", [])) for t in events.json().get("timetables", []))
            if count == 0:
                raise GateFailure("canary parse", f"job {job_id} completed with no events")
            return job_id, count
        if status.get("status") == "failed":
            raise GateFailure("canary parse", f"job {job_id} failed: {status.get('error')}")
        time.sleep(0.3)
    raise GateFailure(
        "canary parse", f"job {job_id} still {status.get('status', '?')} after {timeout_s:.0f}s"
    )


def run_gate(
    api_urls: list[str],
    ops_token: str,
    *,
    timeout_s: float = 90.0,
    with_canary: bool = True,
    echo: Callable[[str], None] | None = None,
) -> GateReport:
    """All checks in order; the first failure raises `GateFailure`."""
    say = echo or (lambda _: None)
    started = time.monotonic()
    report = GateReport()
    with httpx.Client() as client:
        for url in api_urls:
            wait_ready(client, url, timeout_s)
            report.checks[f"ready {url}"] = "ok"
            say(f"gate: {url}/readyz ready")
        count = wait_workers(client, api_urls[0], ops_token, timeout_s)
        report.checks["workers"] = f"{count} alive"
        say(f"gate: {count} worker(s) with a fresh heartbeat")
        if with_canary:
            job_id, events = canary(client, api_urls[0], ops_token, timeout_s)
            report.canary_job, report.canary_events = job_id, events
            report.checks["canary"] = f"job {job_id}: {events} events"
            say(f"gate: canary job {job_id} parsed ({events} events)")
    report.duration_s = time.monotonic() - started
    return report


def main(argv: list[str] | None = None) -> int:
    """Run gate checks from inside a container (``python -m schedgen_ops.runtime.gate``).

    Runtimes whose api is not reachable from the operator's machine (compose behind Traefik, or no
    published port) run the same checks through ``exec``: the token comes from the container's own
    SCHEDGEN_OPS_TOKEN. Prints one JSON object; exit 0 when every check passed, 1 with the failure.
    """
    import argparse
    import json
    import os

    parser = argparse.ArgumentParser(prog="python -m schedgen_ops.runtime.gate")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--checks", default="ready", help="comma-separated: ready, workers, canary")
    args = parser.parse_args(argv)
    checks = set(args.checks.split(","))
    token = os.environ.get("SCHEDGEN_OPS_TOKEN", "")
    report: dict[str, Any] = {"ok": True, "checks": {}}
    try:
        with httpx.Client() as client:
            if "ready" in checks:
                wait_ready(client, args.url, args.timeout)
                report["checks"]["ready"] = "ok"
            if "workers" in checks:
                report["checks"]["workers"] = f"{wait_workers(client, args.url, token, args.timeout)} alive"
            if "canary" in checks:
                job_id, events = canary(client, args.url, token, args.timeout)
                report.update(canary_job=job_id, canary_events=events)
                report["checks"]["canary"] = f"job {job_id}: {events} events"
    except GateFailure as exc:
        report.update(ok=False, check=exc.check, detail=exc.detail)
    print(json.dumps(report, sort_keys=True))
    return 0 if report["ok"] else 1


if __name__ == "__main__":  # pragma: no cover - exercised inside the image by the compose gate
    raise SystemExit(main())
