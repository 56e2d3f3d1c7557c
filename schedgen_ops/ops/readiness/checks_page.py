"""Live check of the student page's security headers (``schedgen checklist --live``).

The page at / is the one part of the service that a browser renders, so it is the part a missing CSP or
framing header turns into an attack surface (script injection, clickjacking, leaking a subscription
URL in a Referer).
"""

from __future__ import annotations

import re

import httpx

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.model import Evidence, Finding, check

UNSAFE_SOURCES = ("'unsafe-inline'", "'unsafe-eval'", "data:", "*", "http:", "https:")


def csp_directives(policy: str) -> dict[str, list[str]]:
    """``"default-src 'none'; script-src 'self'"`` -> ``{"default-src": ["'none'"], ...}``."""
    out: dict[str, list[str]] = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            out.setdefault(words[0].lower(), words[1:])
    return out


def page_header_findings(url: str, headers: httpx.Headers) -> list[Finding]:
    """One finding per required header of the page's response."""
    findings: list[Finding] = []
    policy = headers.get("content-security-policy", "")
    csp = csp_directives(policy)
    scripts = csp.get("script-src", csp.get("default-src"))
    sources = " ".join(scripts) if scripts is not None else "none set (any script runs)"
    findings.append(
        Finding(
            scripts is not None and not any(s in UNSAFE_SOURCES for s in scripts),
            f"CSP script sources: {sources}",
            Evidence(url, "header:Content-Security-Policy", policy or None),
        )
    )
    framing = csp.get("frame-ancestors") == ["'none'"] or headers.get("x-frame-options", "").upper() == "DENY"
    findings.append(
        Finding(
            framing,
            "framing is refused" if framing else "the page can be framed (no frame-ancestors 'none' / DENY)",
            Evidence(url, "header:X-Frame-Options", headers.get("x-frame-options")),
        )
    )
    for name, pattern in (
        ("x-content-type-options", r"^nosniff$"),
        ("referrer-policy", r"^(no-referrer|same-origin|strict-origin|strict-origin-when-cross-origin)$"),
    ):
        value = headers.get(name)
        ok = value is not None and re.match(pattern, value.strip().lower()) is not None
        findings.append(Finding(ok, f"{name}: {value or 'missing'}", Evidence(url, f"header:{name}", value)))
    return findings


@check(
    "live-page-headers",
    title="The student page sends a strict CSP and its security headers",
    category="security",
    severity="danger",
    kind="live",
    why="The page is rendered by students' browsers: without a strict CSP an injected script runs, without "
    "framing and referrer rules it can be clickjacked or leak subscription URLs.",
    fix="Serve the page from this version's api (service/web sets the headers) and make sure no proxy in "
    "front strips them; the edge's own CSP (traefik.content_security_policy) must not allow inline scripts.",
)
def live_page_headers(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    url = live.url.rstrip("/") + "/"
    try:
        response = httpx.get(url, timeout=live.timeout_s)
    except httpx.HTTPError as exc:
        return [Finding(False, f"GET / failed: {exc}", Evidence(url, "status", None))]
    media = response.headers.get("content-type", "")
    if response.status_code != 200 or not media.startswith("text/html"):
        return [
            Finding(
                False,
                f"GET / -> {response.status_code} {media}: no student page",
                Evidence(url, "status", response.status_code),
            )
        ]
    return page_header_findings(url, response.headers)
