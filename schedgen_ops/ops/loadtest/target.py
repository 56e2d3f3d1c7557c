"""Which api a load test hits: only loopback addresses, and only one that answers right now.

Load is only ever generated against this machine (a workplace rule): a URL naming any other host is
refused before a single request is sent. A stopped api is reported in seconds, not after a timeout.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from limits import parse as parse_limit

from schedgen_ops.errors import SchedgenError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the names of localhost (no DNS lookup of other names)."""
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """The normalized base URL (no trailing slash); refuses non-http(s) and non-loopback URLs."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SchedgenError(
            f"--url {url!r} is not an http(s) URL",
            code="usage",
            hint="e.g. --url http://127.0.0.1:8000",
            exit_code=2,
        )
    if not is_loopback(parts.hostname):
        raise SchedgenError(
            f"refusing to load-test {parts.hostname}: "
            "load tests only target this machine (127.0.0.1/localhost)",
            code="non_loopback_target",
            hint="run the stack locally (`schedgen up`) and pass --url http://127.0.0.1:PORT",
            exit_code=2,
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def preflight(url: str, *, timeout_s: float = 3.0) -> None:
    """GET /healthz once; a refused connection or an unhealthy answer is a clear, immediate error."""
    try:
        response = httpx.get(f"{url}/healthz", timeout=timeout_s)
    except httpx.ConnectError as exc:
        reason = "connection refused" if isinstance(exc.__cause__, ConnectionRefusedError) else str(exc)
        raise SchedgenError(
            f"the api at {url} is not reachable ({reason or 'connection failed'})",
            code="api_unreachable",
            hint="start the stack with `schedgen up` or point --url at a running api",
        ) from exc
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise SchedgenError(
            f"the api at {url} did not answer /healthz within {timeout_s:.0f}s",
            code="api_unreachable",
            hint="check `schedgen status` and the api logs",
        ) from exc
    except httpx.HTTPError as exc:
        raise SchedgenError(f"the api at {url} failed: {exc}", code="api_unreachable") from exc
    if response.status_code != 200:
        raise SchedgenError(
            f"the api at {url} is not healthy: /healthz answered {response.status_code}",
            code="api_unhealthy",
            hint="check `schedgen health` before load-testing",
        )


DEFAULT_URL = "http://127.0.0.1:8000"
AUTH_HEADER = "X-API-Key"


@dataclass(frozen=True)
class ResolvedTarget:
    """Where the api is and what the run needs to know about the service it fronts."""

    url: str
    database_url: str
    auth_header: str = AUTH_HEADER
    auth_prefix: str = ""
    uploads_per_key: int = 9
    metrics_urls: dict[str, str] = field(default_factory=dict)


def uploads_per_key(rate_uploads: str) -> int:
    """Uploads one simulated client makes before moving to a fresh key: one below the per-client limit."""
    try:
        amount = int(parse_limit(rate_uploads).amount)
    except ValueError:
        return 1
    return max(1, amount - 1)


def resolve_target(
    target: str | None, *, url: str | None, database_url: str, project_dir: Path | None = None
) -> ResolvedTarget:
    """The api URL, its database and its client settings.

    ``--url`` (default http://127.0.0.1:8000) with SCHEDGEN_* environment, or ``--target T``: the
    project's deployed stack, found the way `schedgen health --target` finds it (the local runtime
    knows its api port and generated database URL). Either way only a loopback URL is accepted.
    """
    from schedgen_ops.service.settings import ServiceSettings

    settings = ServiceSettings()  # type: ignore[call-arg]  # fields come from the environment
    rate_uploads = settings.rate_uploads
    worker_port = settings.worker_metrics_port
    if target is not None:
        from schedgen_ops.config.ops_loader import try_load_config
        from schedgen_ops.ops.health.endpoints import resolve_endpoints
        from schedgen_ops.targets import check_target

        check_target(target)
        project = project_dir or Path.cwd()
        config = try_load_config(project)
        endpoints = resolve_endpoints(target, project, database_url=database_url or None, config=config)
        if not endpoints.api_url:
            raise SchedgenError(
                f"cannot tell where the {target} stack's api listens",
                code="no_target",
                hint="pass --url http://127.0.0.1:PORT",
                exit_code=2,
            )
        url, database_url = endpoints.api_url, endpoints.database_url
        if config is not None:
            rate_uploads = config.service.rate_uploads
            worker_port = config.worker.metrics_port
        if target != "local":  # containers do not publish the workers' metrics ports
            worker_port = 0
    base = check_url(url or DEFAULT_URL)
    host = urlsplit(base).hostname or "127.0.0.1"
    metrics = {"api": f"{base}/metrics"}
    if worker_port:
        metrics["worker"] = f"http://{host}:{worker_port}/metrics"
    return ResolvedTarget(
        url=base,
        database_url=database_url or settings.database_url.get_secret_value(),
        uploads_per_key=uploads_per_key(rate_uploads),
        metrics_urls=metrics,
    )
