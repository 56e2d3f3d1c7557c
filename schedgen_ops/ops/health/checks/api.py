"""api: liveness (/healthz) with its latency, readiness (/readyz) with the per-dependency detail."""

from __future__ import annotations

import time
from typing import Any

import httpx

from schedgen_ops.ops.health.model import CheckResult, Level, Status, judged, passed
from schedgen_ops.ops.health.runner import ProbeContext

C = "api"


def _get(client: httpx.Client, url: str, ctx: ProbeContext) -> tuple[httpx.Response, float]:
    timeout = ctx.deadline.remaining()
    begin = time.monotonic()
    response = client.get(url, timeout=httpx.Timeout(timeout))
    return response, time.monotonic() - begin


def _not_ready_detail(response: httpx.Response) -> str:
    """Names of the dependencies /readyz reports as failing (any of the usual JSON shapes)."""
    try:
        body: Any = response.json()
    except ValueError:
        return response.text[:120]
    failing: list[str] = []
    checks = body.get("checks", body.get("dependencies", body)) if isinstance(body, dict) else {}
    if isinstance(checks, dict):
        for name, detail in checks.items():
            state = detail.get("status", detail.get("ok")) if isinstance(detail, dict) else detail
            if state not in (True, "ok", "ready", "up", "pass"):
                reason = detail.get("error", detail.get("detail", "")) if isinstance(detail, dict) else ""
                failing.append(f"{name}: {reason}".rstrip(": ") if reason else str(name))
    elif isinstance(checks, list):
        for item in checks:
            if isinstance(item, dict) and item.get("status") not in ("ok", "ready", "up", "pass", True):
                failing.append(str(item.get("name", "?")))
    return "; ".join(failing)[:200] or "no detail"


def probe(ctx: ProbeContext) -> list[CheckResult]:
    """GET /healthz then /readyz on the configured api URL."""
    base = ctx.endpoints.api_url.rstrip("/")
    if not base:
        return [CheckResult(C, "liveness", Status.UNKNOWN, "no api URL", hint="pass --url http://HOST:PORT")]
    th = ctx.thresholds
    results: list[CheckResult] = []
    with httpx.Client(follow_redirects=False, trust_env=False) as client:
        try:
            live, elapsed = _get(client, f"{base}/healthz", ctx)
        except httpx.TimeoutException:
            return [
                CheckResult(
                    C,
                    "liveness",
                    Status.CRITICAL,
                    f"{base}/healthz: no answer within {th.check_budget_s:g} s",
                    threshold=f"answer within {th.check_budget_s:g} s",
                    hint="the api accepts connections but hangs: check `schedgen logs api`; restart it",
                )
            ]
        except httpx.HTTPError as exc:
            return [
                CheckResult(
                    C,
                    "liveness",
                    Status.CRITICAL,
                    f"{base}/healthz: {type(exc).__name__}: {exc}"[:200],
                    threshold="HTTP 200",
                    hint="the api is not running or unreachable: `schedgen status`, then `schedgen logs api`",
                )
            ]
        ok = live.status_code == 200
        results.append(
            passed(
                C,
                "liveness",
                ok,
                f"HTTP {live.status_code}",
                value=live.status_code,
                threshold="HTTP 200",
                hint="the api process answers but reports itself unhealthy: `schedgen logs api`",
            )
        )
        level = Level(th.api_latency_warn_s * 1000, th.api_latency_critical_s * 1000)
        ms = elapsed * 1000
        results.append(
            judged(
                C,
                "latency",
                level,
                ms,
                f"{ms:.0f} ms",
                value=round(ms, 1),
                unit="ms",
                hint="the api is slow even on /healthz: check CPU (`schedgen status`) and api replicas",
            )
        )
        try:
            ready, _ = _get(client, f"{base}/readyz", ctx)
        except httpx.HTTPError as exc:
            results.append(
                CheckResult(
                    C,
                    "readiness",
                    Status.CRITICAL,
                    f"{base}/readyz: {type(exc).__name__}"[:200],
                    threshold="HTTP 200",
                    hint="/readyz did not answer in time: a dependency check inside the api hangs",
                )
            )
            return results
        if ready.status_code == 200:
            results.append(
                CheckResult(C, "readiness", Status.OK, "HTTP 200", value=200, threshold="HTTP 200")
            )
        else:
            detail = _not_ready_detail(ready)
            results.append(
                CheckResult(
                    C,
                    "readiness",
                    Status.CRITICAL,
                    f"HTTP {ready.status_code}: {detail}",
                    value=ready.status_code,
                    threshold="HTTP 200",
                    hint="the api cannot reach a dependency: fix the one named (see its own rows below)",
                )
            )
    return results
