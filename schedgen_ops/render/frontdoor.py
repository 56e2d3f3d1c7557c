"""Template context of the local runtime's front door (Caddy) and of its blue/green process slots.

Every api and worker slot exists in two colours so a deploy can start the new release beside the one
that serves: ``api-blue-1..N`` on the first N internal ports, ``api-green-1..N`` on the next N, likewise
``pdf-worker-blue-i`` / ``pdf-worker-green-i`` (each with its own metrics port). Which colour serves is
runtime state (.schedgen/run/frontdoor/), never rendered.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from schedgen_ops.config.model import Config

COLOURS = ("blue", "green")
#: Domains that can never get a public certificate: `tls: auto` uses the local CA for them.
_NOT_PUBLIC = (".localhost", ".local", ".test", ".example", ".invalid", ".internal", ".lan", ".home.arpa")
_EXAMPLE = ("example.com", "example.org", "example.net")


def is_public_name(domain: str) -> bool:
    """A DNS name an ACME CA could validate: dotted, not an IP, not a reserved or example name."""
    name = domain.lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return False
    except ValueError:
        pass
    if "." not in name or name.endswith(_NOT_PUBLIC) or name == "localhost":
        return False
    return not any(name == e or name.endswith("." + e) for e in _EXAMPLE)


def tls_mode(config: Config) -> str:
    """off, internal or acme (``auto`` resolved against the domain)."""
    mode = config.frontdoor.tls
    if mode == "auto":
        return "acme" if is_public_name(config.domain) else "internal"
    return mode


def public_url(config: Config) -> str:
    """The front door's address as clients on this host reach it (the Caddyfile's first site): plain HTTP
    on loopback with TLS off, HTTPS on loopback with the local CA, else the public name (ACME)."""
    mode = tls_mode(config)
    if mode == "off":
        return f"http://127.0.0.1:{config.ports.api}"
    host = "127.0.0.1" if mode == "internal" else config.domain
    return f"https://{host}:{config.ports.api}"


def upstream_base(config: Config) -> int:
    return config.frontdoor.first_port(config.ports.api, 2 * config.api.max_replicas)


def slots(config: Config) -> dict[str, list[dict[str, Any]]]:
    """Program slots per service: name, colour, index and (api) port or (worker) metrics port."""
    api_max, worker_max = config.api.max_replicas, config.worker.max_replicas
    base = upstream_base(config)
    out: dict[str, list[dict[str, Any]]] = {"api": [], "pdf-worker": []}
    for c, colour in enumerate(COLOURS):
        for i in range(1, api_max + 1):
            port = base + c * api_max + i - 1
            out["api"].append({"name": f"api-{colour}-{i}", "colour": colour, "index": i, "port": port})
        for i in range(1, worker_max + 1):
            port = config.worker.metrics_port + c * worker_max + i - 1
            out["pdf-worker"].append(
                {"name": f"pdf-worker-{colour}-{i}", "colour": colour, "index": i, "port": port}
            )
    return out


def frontdoor_context(config: Config) -> dict[str, Any]:
    """What templates/supervisor/{supervisord.conf,Caddyfile,prometheus.yml}.j2 add to the base context."""
    mode = tls_mode(config)
    if mode == "acme" and not is_public_name(config.domain):
        from schedgen_ops.errors import SchedgenError

        raise SchedgenError(
            f"frontdoor.tls is acme but domain {config.domain!r} is not a public DNS name",
            code="bad_config",
            hint="set `domain` to the name that points at this host, or frontdoor.tls: internal",
        )
    names = [config.domain, "localhost", "127.0.0.1"] if mode == "internal" else [config.domain]
    return {
        "frontdoor": {
            "tls": mode,
            "bind": config.frontdoor.bind,
            "http_port": config.frontdoor.http_port,
            "https_port": config.ports.api,
            "names": list(dict.fromkeys(names)),
            "acme_email": config.frontdoor.acme_email,
            "upstream_base": upstream_base(config),
        },
        "slots": slots(config),
        "colours": list(COLOURS),
    }
