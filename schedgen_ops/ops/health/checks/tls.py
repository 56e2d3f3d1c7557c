"""tls: days until the public certificate expires (only when a domain is configured)."""

from __future__ import annotations

import socket
import ssl
from datetime import UTC, datetime

from schedgen_ops.ops.health.model import CheckResult, Level, Status, judged
from schedgen_ops.ops.health.runner import ProbeContext

C = "tls"


def probe(ctx: ProbeContext) -> list[CheckResult]:
    ep = ctx.endpoints
    host, port = ep.domain, ep.tls_port
    if ":" in host:
        host, _, raw_port = host.rpartition(":")
        port = int(raw_port)
    return expiry(ctx, host, port)


def expiry(
    ctx: ProbeContext,
    host: str,
    port: int,
    *,
    cafile: str | None = None,
    component: str = C,
    check: str = "expiry",
    server_hostname: str | None = None,
    level: Level | None = None,
) -> list[CheckResult]:
    """Days until ``host:port``'s certificate expires, its chain verified against the system trust store
    or ``cafile`` (the local runtime's front door with its own CA)."""
    th = ctx.thresholds
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection((host, port), timeout=ctx.deadline.remaining()) as raw:
            raw.settimeout(ctx.deadline.remaining())
            with context.wrap_socket(raw, server_hostname=server_hostname or host) as tls:
                cert = tls.getpeercert()
    except ssl.SSLCertVerificationError as exc:
        return [
            CheckResult(
                component,
                check,
                Status.CRITICAL,
                f"{host}:{port}: {exc.verify_message}",
                threshold="valid chain",
                hint="browsers reject this certificate: check Traefik's ACME "
                "log (`schedgen logs traefik`) and that DNS points at this host",
            )
        ]
    except (OSError, ssl.SSLError) as exc:
        return [
            CheckResult(
                component,
                check,
                Status.UNKNOWN,
                f"{host}:{port} unreachable: {exc}"[:200],
                hint="the domain does not answer on HTTPS from here: check DNS and the edge proxy",
            )
        ]
    not_after = cert.get("notAfter") if cert else None
    if not isinstance(not_after, str):
        return [
            CheckResult(
                component, check, Status.UNKNOWN, "no certificate expiry", hint="inspect with openssl"
            )
        ]
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    days = (expires - datetime.now(UTC)).total_seconds() / 86400
    level = level or Level(th.tls_expiry_warn_days, th.tls_expiry_critical_days, rising=False)
    return [
        judged(
            component,
            check,
            level,
            days,
            f"{days:.1f} days (until {expires:%Y-%m-%d})",
            note=" left",
            value=round(days, 2),
            unit="days",
            hint="the certificate is not being renewed: check Traefik's ACME log and port 80 reachability",
        )
    ]
