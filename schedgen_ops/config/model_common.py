"""What every configuration section shares: the strict base, a size, and checks used by several sections."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from schedgen_ops.config.values import bind_host, host_port

DURATION_RE = re.compile(r"^[0-9]+(ms|s|m|h|d)$")
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class Strict(BaseModel):
    """Base for every section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Size(Strict):
    """CPU and memory of one container/pod (the limit; the reservation is derived)."""

    cpus: float = Field(gt=0, description="CPU limit (cores).")
    memory_mb: int = Field(gt=0, description="Memory limit in MiB.")


def private_cidr(value: str) -> str:
    """A private network in CIDR form, at most a /8 (IPv4) or /32 (IPv6): what a proxy network is."""
    import ipaddress

    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a network in CIDR form like 10.250.0.0/24 ({exc})") from None
    if not network.is_private or network.prefixlen < (8 if network.version == 4 else 32):
        raise ValueError(f"{value!r} must be a private network no wider than /8 (IPv6: /32)")
    return str(network)


#: The network addresses a setting may name: a private CIDR, a host to bind, HOST:PORT to bind.
PrivateCidr = Annotated[str, AfterValidator(private_cidr)]
BindHost = Annotated[str, AfterValidator(bind_host)]
HostPort = Annotated[str, AfterValidator(host_port)]


def no_webhook_here(value: str, secret: str) -> str:
    """Webhook URLs carry credentials (a hook's path is its key) and schedgen.yaml is committed."""
    if value:
        raise ValueError(
            f"webhook URLs are secrets and do not belong in schedgen.yaml: store it with "
            f"`printf %s URL | schedgen secrets set {secret}` (kept in .schedgen/secrets.env, never rendered)"
        )
    return value
