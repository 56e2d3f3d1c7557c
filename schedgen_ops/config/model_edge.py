"""The edge, frontdoor and traefik sections: how requests reach the api (Traefik, Caddy, a plain bind)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from schedgen_ops.config.model_common import BindHost, HostPort, PrivateCidr, Size, Strict
from schedgen_ops.config.values import Email, OptionalEmail, SafeText


class EdgeConfig(Strict):
    """The Traefik front door; off for installs behind an existing proxy or ingress."""

    enabled: bool = Field(True, description="False = no Traefik; the api is published on api_bind.")
    api_bind: HostPort = Field(
        "127.0.0.1:8000", description="HOST:PORT the api is published on when the edge is off."
    )
    subnet: PrivateCidr = Field(
        "10.250.0.0/24",
        description="Subnet of the compose edge network (Traefik, api, Grafana): with the edge on, the "
        "only peers whose X-Forwarded-For the api believes.",
    )

    @property
    def api_host(self) -> str:
        return self.api_bind.rpartition(":")[0].strip("[]")

    @property
    def api_port(self) -> int:
        return int(self.api_bind.rpartition(":")[2])


class FrontDoorConfig(Strict):
    """The local runtime's reverse proxy (Caddy): it owns ports.api, balances the api replicas on
    internal ports, health-checks them and terminates TLS. Defaults here (not in profiles) so every
    existing schedgen.yaml stays valid."""

    tls: Literal["off", "internal", "acme", "auto"] = Field(
        "off",
        description="off = plain HTTP on ports.api; internal = Caddy's local CA; acme = a public "
        "certificate for `domain`; auto = acme when `domain` is a real public name, else internal.",
    )
    bind: BindHost = Field(
        "127.0.0.1", description="Address the front door listens on (0.0.0.0 = every one)."
    )
    http_port: int = Field(
        80, ge=1, le=65535, description="With TLS on: the HTTP port that redirects to HTTPS (and ACME)."
    )
    upstream_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="First internal api port (2 x api.max_replicas ports from it); 0 = ports.api + 10000 "
        "(ports.api - 10000 when that passes 65535).",
    )
    acme_email: OptionalEmail = Field("", description="Contact address given to the ACME CA (optional).")

    @field_validator("tls", mode="before")
    @classmethod
    def _bare_off(cls, value: object) -> object:
        """YAML 1.1 reads a bare ``off`` (in schedgen.yaml or ``--set frontdoor.tls=off``) as false."""
        return "off" if value is False else value

    def first_port(self, api_port: int, count: int) -> int:
        """The first of the ``count`` internal api ports (blue then green slots)."""
        if self.upstream_port:
            return self.upstream_port
        return api_port + 10000 if api_port + 10000 + count <= 65536 else max(1, api_port - 10000)


class TraefikConfig(Size):
    acme_email: Email
    rate_average: int = Field(gt=0, description="Edge rate limit: average requests/s per client IP.")
    rate_burst: int = Field(gt=0)
    content_security_policy: SafeText
    dashboard: Literal[False] = Field(description="The Traefik dashboard is never exposed.")
