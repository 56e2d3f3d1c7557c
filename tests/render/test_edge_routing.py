"""The edge routes only the public api paths, and the api believes X-Forwarded-For only from the edge.

The rendered Traefik rules and the Kubernetes Ingress are evaluated for real paths: a small interpreter of
the Traefik rule language (Host, Path, PathPrefix, !, &&, ||, parentheses: every matcher the templates
use; an unknown matcher fails the test) and the Ingress path semantics of the Kubernetes API
(Prefix = element-wise, Exact = equal).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml
from renderkit import PROFILES, config_for

from schedgen_ops.render.context import project_paths, role_env

INTERNAL = ["/metrics", "/readyz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"]
PUBLIC = ["/api/uploads", "/api/jobs/0123456789abcdef0123456789abcdef/calendar.ics", "/api/queue", "/healthz"]
# The student page (service/web): the page, its hashed files, its calls and calendar subscriptions.
PAGE = ["/", "/static/app.0123456789ab.js", "/api/subscriptions", "/api/calendars/preview",
        "/cal/" + "A" * 43 + ".ics"]  # fmt: skip
NOT_PAGE = ["/index.html", "/staticx", "/calx/a.ics", "/static", "/cal", "/docs/", "/metrics/x"]
RFC1918 = [ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]

Request = tuple[str, str]  # (host, path)
Matcher = Callable[[Request], bool]
_TOKEN = re.compile(r"\s*(?:(?P<op>&&|\|\||!|\(|\)|,)|(?P<name>[A-Za-z]+)\(|(?P<arg>`[^`]*`))")


def traefik_rule(rule: str) -> Matcher:
    """Compile a Traefik v3 rule into a predicate over (host, path)."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(rule.rstrip()):
        m = _TOKEN.match(rule, pos)
        assert m, f"cannot read the rule at {rule[pos:]!r}"
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    tokens.append(("end", ""))
    at = 0

    def peek() -> tuple[str, str]:
        return tokens[at]

    def take(expected: str | None = None) -> tuple[str, str]:
        nonlocal at
        token = tokens[at]
        assert expected is None or token[1] == expected, f"expected {expected!r}, got {token!r} in {rule!r}"
        at += 1
        return token

    def either(a: Matcher, b: Matcher) -> Matcher:
        return lambda r: a(r) or b(r)

    def both(a: Matcher, b: Matcher) -> Matcher:
        return lambda r: a(r) and b(r)

    def expr() -> Matcher:  # or-expression
        left = conj()
        while peek() == ("op", "||"):
            take()
            left = either(left, conj())
        return left

    def conj() -> Matcher:
        left = unary()
        while peek() == ("op", "&&"):
            take()
            left = both(left, unary())
        return left

    def unary() -> Matcher:
        if peek() == ("op", "!"):
            take()
            inner = unary()
            return lambda r: not inner(r)
        if peek() == ("op", "("):
            take()
            inner = expr()
            take(")")
            return inner
        kind, name = take()
        assert kind == "name", f"unexpected {name!r} in {rule!r}"
        args = [take()[1].strip("`")]
        while peek() == ("op", ","):
            take()
            args.append(take()[1].strip("`"))
        take(")")
        if name == "Host":
            return lambda r: r[0].lower() in (a.lower() for a in args)
        if name == "Path":
            return lambda r: r[1] in args
        if name == "PathPrefix":
            return lambda r: any(r[1].startswith(a) for a in args)
        raise AssertionError(f"matcher {name} is not interpreted by this test; extend it")

    matcher = expr()
    assert peek() == ("end", ""), f"trailing tokens in {rule!r}"
    return matcher


def test_the_rule_interpreter_reads_traefik_precedence() -> None:
    rule = traefik_rule("Host(`a.b`) && !PathPrefix(`/x`) || Path(`/y`)")
    assert rule(("a.b", "/z")) and not rule(("a.b", "/x/1")) and rule(("other", "/y"))
    assert not traefik_rule("Host(`a.b`) && (Path(`/p`) || PathPrefix(`/q/`))")(("a.b", "/q"))


def routed_by_traefik(dynamic: dict[str, Any], host: str, path: str) -> list[str]:
    routers = dynamic["http"]["routers"]
    return sorted(name for name, router in routers.items() if traefik_rule(router["rule"])((host, path)))


@pytest.mark.parametrize("profile", PROFILES)
def test_traefik_routes_only_public_api_paths(rendered: Callable[[str], Path], profile: str) -> None:
    domain = config_for(profile).domain
    dynamic = yaml.safe_load((rendered(profile) / "compose/traefik/dynamic.yml").read_text())
    for path in [*PUBLIC, *PAGE]:
        assert routed_by_traefik(dynamic, domain, path) == ["api"], path
    for path in [*INTERNAL, *NOT_PAGE, "/apix", "/api"]:
        assert routed_by_traefik(dynamic, domain, path) == [], f"{path} is routed from the internet"
    assert routed_by_traefik(dynamic, f"grafana.{domain}", "/d/abc") == ["grafana"]
    assert routed_by_traefik(dynamic, f"grafana.{domain}", "/metrics") == []
    assert routed_by_traefik(dynamic, "other.example", "/api/uploads") == []
    # Traefik itself still checks the api on /readyz, from inside.
    assert dynamic["http"]["services"]["api"]["loadBalancer"]["healthCheck"]["path"] == "/readyz"


def ingress_routes(ingress: dict[str, Any], host: str, path: str) -> bool:
    """Kubernetes Ingress matching: Prefix is element-wise (/api matches /api/x, not /apix)."""
    for rule in ingress["spec"]["rules"]:
        if rule.get("host") not in (None, host):
            continue
        for entry in rule["http"]["paths"]:
            want, kind = entry["path"], entry["pathType"]
            if kind == "Exact" and path == want:
                return True
            if kind == "Prefix":
                parts, prefix = path.rstrip("/").split("/"), want.rstrip("/").split("/")
                if parts[: len(prefix)] == prefix:
                    return True
            assert kind in ("Exact", "Prefix"), f"pathType {kind} is implementation-specific"
    return False


@pytest.mark.parametrize("profile", PROFILES)
def test_kubernetes_ingress_routes_only_public_api_paths(
    rendered: Callable[[str], Path], profile: str
) -> None:
    domain = config_for(profile).domain
    docs = list(yaml.safe_load_all((rendered(profile) / "kubernetes/ingress.yaml").read_text()))
    ingresses = [d for d in docs if d and d.get("kind") == "Ingress"]
    assert [i["metadata"]["name"] for i in ingresses] == ["api"]
    ingress = ingresses[0]
    for path in [*PUBLIC, *PAGE]:
        assert ingress_routes(ingress, domain, path), path
    for path in [*INTERNAL, *NOT_PAGE[:3], "/apix"]:
        assert not ingress_routes(ingress, domain, path), f"{path} is routed from the internet"
    # Probes and Prometheus reach the pods directly.
    api = {
        d["kind"]: d for d in yaml.safe_load_all((rendered(profile) / "kubernetes/api.yaml").read_text()) if d
    }
    container = api["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def _trusted(env: dict[str, str]) -> list[Any]:
    return [ip_network(cidr) for cidr in env["SCHEDGEN_TRUSTED_PROXIES"].split(",")]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_api_trusts_only_the_edge_network(rendered: Callable[[str], Path], profile: str) -> None:
    config = config_for(profile)
    compose = yaml.safe_load((rendered(profile) / "compose/docker-compose.yml").read_text())
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert subnet == config.edge.subnet
    assert compose["services"]["traefik"]["networks"] == ["edge"]
    for role in ("api", "pdf-worker"):
        env = compose["services"][role]["environment"]
        assert _trusted(env) == [ip_network(subnet)], role
    kustomization = (rendered(profile) / "kubernetes/kustomization.yaml").read_text()
    trusted_k8s = set(re.findall(r"SCHEDGEN_TRUSTED_PROXIES=([^\"\n]+)", kustomization))
    assert trusted_k8s == {",".join(config.kubernetes.ingress_cidrs)}
    for cidrs in [[ip_network(subnet)], [ip_network(c) for c in config.kubernetes.ingress_cidrs]]:
        assert not any(net in cidrs for net in RFC1918), "a whole RFC 1918 range is trusted"


def test_trusted_networks_follow_the_settings_and_the_edge_switch() -> None:
    paths = project_paths(Path("/srv/schedgen"))
    config = config_for(
        "small",
        "edge.subnet=10.77.1.0/24",
        "kubernetes.ingress_cidrs=[10.8.0.0/14]",
        "service.trusted_proxies=[192.0.2.10/32]",
    )
    assert _trusted(role_env(config, "compose", "api", paths)) == [ip_network("10.77.1.0/24")]
    assert _trusted(role_env(config, "kubernetes", "api", paths)) == [ip_network("10.8.0.0/14")]
    # Without Traefik the api believes only the operator's own proxy (service.trusted_proxies).
    edgeless = config_for("small", "edge.enabled=false", "service.trusted_proxies=[192.0.2.10/32]")
    assert _trusted(role_env(edgeless, "compose", "api", paths)) == [ip_network("192.0.2.10/32")]
    assert _trusted(role_env(edgeless, "local", "api", paths)) == [ip_network("192.0.2.10/32")]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("edge.subnet=0.0.0.0/0", "private network"),
        ("edge.subnet=10.0.0.0/7", "private network"),
        ("edge.subnet=8.8.8.0/24", "private network"),
        ("edge.subnet=10.250.0.1/24", "CIDR"),
        ("edge.subnet=not-a-net", "CIDR"),
        ("kubernetes.ingress_cidrs=[]", "at least one"),
    ],
)
def test_edge_networks_that_trust_too_much_are_refused(override: str, message: str) -> None:
    from schedgen_ops.errors import SchedgenError

    with pytest.raises(SchedgenError, match=message):
        config_for("small", override)


@pytest.mark.parametrize("profile", PROFILES)
def test_the_edges_csp_lets_the_student_page_run(rendered: Callable[[str], Path], profile: str) -> None:
    """Traefik's security-headers middleware sets its own CSP on the page: it must allow the page's own
    script, style and fetches (all 'self') and still refuse inline scripts."""
    from schedgen_ops.ops.readiness.checks_page import UNSAFE_SOURCES, csp_directives

    dynamic = yaml.safe_load((rendered(profile) / "compose/traefik/dynamic.yml").read_text())
    assert "security-headers" in dynamic["http"]["routers"]["api"]["middlewares"]
    csp = csp_directives(
        dynamic["http"]["middlewares"]["security-headers"]["headers"]["contentSecurityPolicy"]
    )
    for directive in ("script-src", "style-src", "connect-src"):
        sources = csp.get(directive, csp["default-src"])
        assert "'self'" in sources and not set(sources) & set(UNSAFE_SOURCES), (directive, sources)
    assert csp["frame-ancestors"] == ["'none'"]


@pytest.mark.parametrize("profile", PROFILES)
def test_the_edge_access_log_never_records_a_path(rendered: Callable[[str], Path], profile: str) -> None:
    """A path can be a capability (a calendar subscription token, a job id): Traefik's access log
    drops the request path and line and keeps the router, status and timings."""
    static = yaml.safe_load((rendered(profile) / "compose/traefik/traefik.yml").read_text())
    names = static["accessLog"]["fields"]["names"]
    assert names == {"RequestPath": "drop", "RequestLine": "drop"}
    assert static["accessLog"]["fields"].get("defaultMode", "keep") == "keep"  # router, status, timings stay
