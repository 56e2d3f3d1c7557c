"""Static checks of the edge, what the internet reaches: only the proxy publishes ports, TLS with an
HTTP->HTTPS redirect, and rate limits at the proxy and in the service (compose and Kubernetes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import (
    Verdict,
    manifest_evidence,
    per_service,
    service_evidence,
    templates,
)
from schedgen_ops.ops.readiness.flatten import traefik_settings
from schedgen_ops.ops.readiness.inspect import (
    LONG_RUNNING_KINDS,
    as_int,
    containers,
    pod_template,
    role,
    service_default,
    service_env,
    service_role,
    template_env,
    workload_role,
)
from schedgen_ops.ops.readiness.model import Evidence, Finding, check

_REDIRECT = re.compile(r"^entrypoints\.[^.]+\.http\.redirections\.entrypoint\.to$")
_REDIRECT_MW = re.compile(r"^http\.middlewares\.[^.]+\.redirectscheme\.scheme$")
_TLS = re.compile(r"^(entrypoints\.[^.]+\.http\.tls|http\.routers\.[^.]+\.tls)")
_RATELIMIT = re.compile(r"^http\.middlewares\.([^.]+)\.ratelimit\.average$")


# --- exposure --------------------------------------------------------------------------------------


def _loopback_bind(port: Any) -> bool:
    """A published port bound to a loopback address (compose long or short syntax)."""
    if isinstance(port, dict):
        host = str(port.get("host_ip") or "")
    else:
        parts = str(port).rsplit(":", 2)
        host = parts[0] if len(parts) == 3 else ""
    return host.strip("[]") in ("127.0.0.1", "::1", "localhost")


def _published(name: str, svc: dict[str, Any], has_proxy: bool) -> Iterator[Verdict]:
    """Published ports are fine on the proxy, or on an api bound to loopback with the edge off."""
    ports = svc.get("ports") or []
    if not ports:
        return
    role_ = service_role(name, svc)
    # Edge off: the api is the front door, for a proxy on this host, so only on loopback.
    behind_proxy = not has_proxy and role_ == "api" and all(_loopback_bind(p) for p in ports)
    ok = role_ == "proxy" or behind_proxy
    what = f"{name} publishes {ports}"
    if not ok and not has_proxy and role_ == "api":
        what += " on all interfaces with the edge off (nothing filters or rate-limits it)"
    yield Verdict(ok, what, "ports", ports)


@check(
    "only-proxy-publishes",
    title="Only the reverse proxy publishes ports",
    category="security",
    severity="danger",
    kind="static",
    why="A published database or Redis port is reachable from the internet; every request must pass Traefik.",
    fix="Remove `ports:` from every service but traefik in the production model (use !reset in the overlay); "
    "with edge.enabled false, bind edge.api_bind to 127.0.0.1 (or the proxy's private address).",
    needs="any-runtime",
)
def check_only_proxy_publishes(ctx: Context) -> list[Finding]:
    out = []
    if ctx.has_compose():
        services = ctx.compose().services()
        has_proxy = any(service_role(n, s or {}) == "proxy" for n, s in services.items())
        out = per_service(ctx, lambda name, svc: _published(name, svc, has_proxy))
        if not out:
            out.append(
                Finding(
                    False,
                    "no service publishes a port (the proxy should)",
                    Evidence("compose", "services", None),
                )
            )
    for manifest in ctx.manifests():
        if manifest.kind == "Service":
            kind = (manifest.doc.get("spec") or {}).get("type", "ClusterIP")
            if kind in ("NodePort", "LoadBalancer"):
                ok = role(manifest.name) == "proxy"
                out.append(
                    Finding(ok, f"{manifest.ref} is {kind}", manifest_evidence(manifest, "spec.type", kind))
                )
        tmpl = pod_template(manifest)
        if tmpl is not None:
            for path, container in containers(tmpl):
                for index, port in enumerate(container.get("ports") or []):
                    if port.get("hostPort"):
                        msg = f"{manifest.ref} container {container.get('name')} hostPort {port['hostPort']}"
                        ev = manifest_evidence(manifest, f"{path}.ports[{index}].hostPort", port["hostPort"])
                        out.append(Finding(False, msg, ev))
    if ctx.has_kubernetes() and not any(m.kind in ("Ingress", "IngressRoute") for m in ctx.manifests()):
        out.append(
            Finding(False, "no Ingress routes traffic to the api", Evidence("kubernetes", "Ingress", None))
        )
    return out


# --- TLS -------------------------------------------------------------------------------------------


@check(
    "tls-redirect",
    title="TLS is terminated and HTTP redirects to HTTPS",
    category="security",
    severity="danger",
    kind="static",
    why="Students upload personal timetables; plain HTTP exposes them and API keys on the wire.",
    fix="Configure a TLS entrypoint (ACME) and redirect the web entrypoint to websecure in Traefik.",
    needs="any-runtime",
)
def check_tls_redirect(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out = []
    if ctx.has_compose():
        settings = traefik_settings(tree, compose=True)
        redirect = [
            (k, v)
            for k, v in settings.items()
            if _REDIRECT.match(k) or (_REDIRECT_MW.match(k) and v[1] == "https")
        ]
        tls = [(k, v) for k, v in settings.items() if _TLS.match(k) and v[1] not in (False, "false")]
        out.append(_first(redirect, "HTTP->HTTPS redirect", "traefik"))
        out.append(_first(tls, "TLS on a router or entrypoint", "traefik"))
    if ctx.has_kubernetes():
        out += _k8s_tls(ctx)
    return out


def _k8s_tls(ctx: Context) -> list[Finding]:
    """TLS on every Ingress, and a redirect (Middleware, annotation, or no plain-HTTP entrypoint at all)."""
    out = []
    ingresses = ctx.kubernetes().kinds("Ingress", "IngressRoute")
    for manifest in ingresses:
        spec = manifest.doc.get("spec") or {}
        ok = bool(spec.get("tls"))
        ev = manifest_evidence(manifest, "spec.tls", spec.get("tls"))
        out.append(Finding(ok, f"{manifest.ref} tls {'set' if ok else 'missing'}", ev))
    redirects = [
        m
        for m in ctx.manifests()
        if m.kind == "Middleware"
        and ((m.doc.get("spec") or {}).get("redirectScheme") or {}).get("scheme") == "https"
    ]
    annotated = [
        m
        for m in ingresses
        if any(
            "redirect" in f"{k}={v}".lower()
            for k, v in ((m.doc.get("metadata") or {}).get("annotations") or {}).items()
        )
    ]
    if redirects or annotated:
        m = (redirects or annotated)[0]
        ev = manifest_evidence(m, "spec.redirectScheme", "https")
        out.append(Finding(True, f"HTTP->HTTPS redirect by {m.ref}", ev))
    else:
        # No redirect object: acceptable only when every Ingress is bound to the TLS entrypoint alone,
        # so plain HTTP never reaches the api (the controller's own redirect then applies).
        for m in ingresses:
            notes = (m.doc.get("metadata") or {}).get("annotations") or {}
            entrypoints = str(notes.get("traefik.ingress.kubernetes.io/router.entrypoints", ""))
            ok = entrypoints.strip() == "websecure"
            msg = f"{m.ref} entrypoints {entrypoints or '(all, incl. plain HTTP)'} and no redirect middleware"
            key = "metadata.annotations.traefik.ingress.kubernetes.io/router.entrypoints"
            out.append(Finding(ok, msg, manifest_evidence(m, key, entrypoints or None)))
    if not ingresses:
        out.append(Finding(False, "no Ingress with TLS", Evidence("kubernetes", "Ingress", None)))
    return out


def _first(found: list[tuple[str, tuple[str, Any]]], what: str, where: str) -> Finding:
    if found:
        key, (file, value) = found[0]
        return Finding(True, f"{what}: {key}={value}", Evidence(file, key, value))
    return Finding(False, f"no {what} configured", Evidence(where, None, None))


# --- rate limits -----------------------------------------------------------------------------------


@check(
    "rate-limits",
    title="Edge and per-client rate limits are set",
    category="security",
    severity="danger",
    kind="static",
    why="Without limits one client (or a loop) fills the queue for every student.",
    fix="Attach a Traefik rateLimit middleware to the api router and keep the service's rate_* settings "
    "valid.",
    needs="any-runtime",
)
def check_rate_limits(ctx: Context) -> list[Finding]:
    from limits import parse_many

    tree = ctx.static_tree()
    out: list[Finding] = []
    if ctx.has_compose():
        out.append(_compose_edge_limit(ctx))
        for name, svc in tree.services().items():
            if service_role(name, svc or {}) == "api":
                env = service_env(tree, svc or {})
                out += _app_limits(name, env, service_evidence(tree, name, "environment"), parse_many)
    if ctx.has_kubernetes():
        out.append(_k8s_edge_limit(ctx))
        for tmpl in templates(ctx, *LONG_RUNNING_KINDS):
            if workload_role(tmpl.manifest) == "api":
                env = template_env(tree, tmpl)
                ev = manifest_evidence(tmpl.manifest, tmpl.path)
                out += _app_limits(tmpl.manifest.ref, env, ev, parse_many)
    return out


def _compose_edge_limit(ctx: Context) -> Finding:
    """A Traefik rateLimit middleware with a positive average, attached to a router."""
    settings = traefik_settings(ctx.static_tree(), compose=True)
    limits_found = {m.group(1): settings[k] for k in settings if (m := _RATELIMIT.match(k))}
    active = {n: v for n, v in limits_found.items() if (as_int(v[1]) or 0) > 0}
    attached = [
        (k, v)
        for k, v in settings.items()
        if re.match(r"^http\.routers\.[^.]+\.middlewares", k) and any(n in str(v[1]) for n in active)
    ]
    if active and attached:
        key, (file, value) = attached[0]
        return Finding(True, f"edge rate limit {sorted(active)} on {key}", Evidence(file, key, value))
    what = "no rateLimit middleware" if not active else f"rateLimit {sorted(active)} not attached to a router"
    return Finding(False, f"traefik: {what}", Evidence("traefik", "http.middlewares", None))


def _k8s_edge_limit(ctx: Context) -> Finding:
    """A rateLimit Middleware that an Ingress (or IngressRoute) names."""
    manifests = ctx.manifests()
    mws = [
        m
        for m in manifests
        if m.kind == "Middleware" and ((m.doc.get("spec") or {}).get("rateLimit") or {}).get("average")
    ]
    refs = " ".join(str(m.doc) for m in manifests if m.kind in ("Ingress", "IngressRoute"))
    attached = [m for m in mws if m.name in refs]
    if attached:
        mw = attached[0]
        ev = manifest_evidence(mw, "spec.rateLimit", (mw.doc.get("spec") or {}).get("rateLimit"))
        return Finding(True, f"edge rate limit {mw.ref}", ev)
    return Finding(
        False, "no rateLimit Middleware attached to the Ingress", Evidence("kubernetes", "Middleware", None)
    )


def _app_limits(where: str, env: dict[str, str], evidence: Evidence, parse_many: Any) -> list[Finding]:
    """The service's own rate_* settings (or its defaults) must parse as rate limits."""
    out = []
    for field in ("rate_uploads", "rate_status", "rate_requests"):
        key = f"SCHEDGEN_{field.upper()}"
        value = env.get(key, str(service_default(field)))
        try:
            ok = bool(parse_many(value))
        except ValueError:
            ok = False
        origin = "" if key in env else " (service default)"
        ev = Evidence(evidence.file, f"{evidence.path}.{key}", value)
        out.append(Finding(ok, f"{where} {key}={value}{origin}", ev))
    return out
