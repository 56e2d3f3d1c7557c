"""api / frontdoor: the local runtime's front door answers on the public address, each upstream it sends
traffic to is ready, and (with TLS) its certificate is valid and not about to expire.

Reported under the ``api`` component (checks ``frontdoor``, ``upstreams``, ``frontdoor_tls``) so the
report's shape stays the one documented; only the local target has a front door, others get no rows.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx

from schedgen_ops.layout import ProjectLayout
from schedgen_ops.ops.health.checks.tls import expiry
from schedgen_ops.ops.health.model import CheckResult, Level, Status
from schedgen_ops.ops.health.runner import ProbeContext

C = "api"


def _local_ca(state: Path) -> Path:
    """Where Caddy keeps the root of its local CA (``tls internal``) for this project."""
    return state / "data" / "frontdoor" / "pki" / "authorities" / "local" / "root.crt"


def probe(ctx: ProbeContext) -> list[CheckResult]:
    ep = ctx.endpoints
    if ep.target != "local" or ep.data_dir is None:
        return []
    from schedgen_ops.runtime.local import LocalRuntime

    # data_dir is the project's .schedgen/ or its .schedgen/data/ (endpoints.py sets either).
    layout = ProjectLayout.containing(ep.data_dir)
    if layout is None:
        return []
    runtime = LocalRuntime(layout.project)
    if not (runtime.active / "local" / "Caddyfile").exists():
        return []
    url = runtime.public_url()
    parts = urlsplit(url)
    ca = _local_ca(layout.state)
    verify: str | bool = str(ca) if parts.scheme == "https" and ca.exists() else True
    results: list[CheckResult] = []
    with httpx.Client(verify=verify) as client:
        try:
            response = client.get(f"{url}/healthz", timeout=ctx.deadline.remaining())
            ok = response.status_code == 200
            results.append(
                CheckResult(
                    C,
                    "frontdoor",
                    Status.OK if ok else Status.CRITICAL,
                    f"{url}/healthz: HTTP {response.status_code}",
                    hint=None if ok else "the front door answers but no replica does: `schedgen status`",
                )
            )
        except httpx.HTTPError as exc:
            results.append(
                CheckResult(
                    C,
                    "frontdoor",
                    Status.CRITICAL,
                    f"{url} unreachable: {type(exc).__name__} {exc}"[:200],
                    hint="see `schedgen logs frontdoor`; `schedgen up` starts it",
                )
            )
        ports = runtime.frontdoor.ports()
        if not ports:
            results.append(
                CheckResult(
                    C,
                    "upstreams",
                    Status.CRITICAL,
                    "the front door has no api replica to send traffic to",
                    hint="`schedgen scale api=1` (or `schedgen up`)",
                )
            )
        else:
            results.append(_upstreams(client, ports, ctx))
    if parts.scheme == "https":
        host = parts.hostname or "127.0.0.1"
        cafile = str(ca) if ca.exists() else None
        # Caddy's local CA signs 12-hour leaves and renews them at 2/3 of their life: judge in hours.
        level = Level(3 / 24, 1 / 24, rising=False) if cafile else None
        results += expiry(
            ctx, host, parts.port or 443, cafile=cafile, component=C, check="frontdoor_tls", level=level
        )
    return results


def _upstreams(client: httpx.Client, ports: list[int], ctx: ProbeContext) -> CheckResult:
    """Every replica in the front door's rotation answers /readyz: all = ok, some = warn, none = critical."""
    seen: list[str] = []
    ready = 0
    for port in ports:
        url = f"http://127.0.0.1:{port}/readyz"
        try:
            code = str(client.get(url, timeout=ctx.deadline.remaining()).status_code)
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        ready += code == "200"
        seen.append(f":{port} {'ready' if code == '200' else code}")
    status = Status.OK if ready == len(ports) else Status.WARN if ready else Status.CRITICAL
    return CheckResult(
        C,
        "upstreams",
        status,
        f"{ready}/{len(ports)} ready ({', '.join(seen)})",
        value=ready,
        threshold="every replica in rotation ready",
        hint=None
        if status is Status.OK
        else "the front door skips replicas failing its health check: `schedgen logs api`, `schedgen status`",
    )
