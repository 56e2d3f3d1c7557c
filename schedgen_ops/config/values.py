"""Validated string types for every setting that lands in YAML, shell, SQL or a Traefik rule.

schedgen.yaml, SCHEDGEN_* variables and ``--set`` are operator input, and a value like
``example.org`) || PathPrefix(`/`)`` in ``domain`` would otherwise change what Traefik routes. Each type
admits only what its consumer can take verbatim, so templates never have to escape and a refused value
says what is allowed. Templates still quote (the ``q`` filter) as a second line of defence.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated

from pydantic import AfterValidator

_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_HOSTNAME_RE = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@(?P<domain>[A-Za-z0-9.-]{1,253})$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PG_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_QUEUE_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_RELPATH_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
# registry[:port]/path[:tag][@sha256:digest], the grammar of docker/distribution's reference package.
_IMAGE_RE = re.compile(
    r"^(?:[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?/)?"  # registry host or first path part
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
#: Printable ASCII that survives YAML scalars, shell words in double quotes and Traefik rules.
_UNSAFE_TEXT_RE = re.compile(r"[^\x20-\x7e]|[\"\\`$]")


def hostname(value: str) -> str:
    """A DNS name (RFC 1123, lowercase): the only thing a ``Host(`...`)`` rule or a TLS SAN may hold."""
    if len(value) > 253 or not _HOSTNAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a DNS name: lowercase letters, digits, '-' and '.' "
            "(e.g. schedule.example.ac.za)"
        )
    return value


def email(value: str) -> str:
    """An ACME account address: plain local part and a DNS domain."""
    match = _EMAIL_RE.fullmatch(value)
    if not match or not _HOSTNAME_RE.fullmatch(match["domain"].lower()):
        raise ValueError(f"{value!r} is not an e-mail address like ops@example.ac.za")
    return value


def bucket(value: str) -> str:
    """An S3 bucket name (3-63 lowercase letters, digits, '.', '-'; not an IP address)."""
    if not _BUCKET_RE.fullmatch(value) or ".." in value or _is_ip(value):
        raise ValueError(
            f"{value!r} is not an S3 bucket name: 3-63 lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    return value


def pg_identifier(value: str) -> str:
    """A Postgres database or role name that needs no quoting in SQL, URLs or shell."""
    if not _PG_IDENT_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} must be lowercase letters, digits and '_', starting with a letter or '_'"
        )
    return value


def queue_name(value: str) -> str:
    """An RQ queue name: it becomes a Redis key and a command-line argument."""
    if not _QUEUE_RE.fullmatch(value):
        raise ValueError(f"{value!r} must be lowercase letters, digits, '_' and '-'")
    return value


def image_ref(value: str) -> str:
    """A container image reference (``registry/path:tag`` or ``@sha256:...``)."""
    if len(value) > 255 or not _IMAGE_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not an image reference like docker.io/library/postgres:15")
    return value


def dns_subdomain_or_empty(value: str) -> str:
    """A Kubernetes object name (StorageClass, IngressClass), or empty for the cluster default."""
    return value and hostname(value)


def email_or_empty(value: str) -> str:
    """An e-mail address, or empty where giving one is optional."""
    return value and email(value)


def relative_path(value: str) -> str:
    """A path inside the project: no absolute path, no '..', no characters a shell would read."""
    if not _RELPATH_RE.fullmatch(value) or any(part == ".." for part in value.split("/")):
        raise ValueError(f"{value!r} must be a relative path inside the project (letters, digits, '._-/')")
    return value


def safe_text(value: str) -> str:
    """Free text (a description, a CSP): printable ASCII without quotes, backslashes, '`' or '$'."""
    bad = _UNSAFE_TEXT_RE.search(value)
    if bad:
        raise ValueError(
            f"{value!r} contains {bad.group()!r}: use printable ASCII without double quotes, backslashes, "
            "backticks or '$'"
        )
    return value


def bind_host(value: str) -> str:
    """The host part of HOST:PORT: an IP address (IPv6 in brackets) or a DNS name."""
    bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
    if _is_ip(bare):
        return value
    return hostname(value)


def host_port(value: str) -> str:
    """HOST:PORT to bind: a `bind_host` and a port from 1 to 65535."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:8000)")
    bind_host(host)
    return value


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


Hostname = Annotated[str, AfterValidator(hostname)]
Email = Annotated[str, AfterValidator(email)]
OptionalEmail = Annotated[str, AfterValidator(email_or_empty)]
Bucket = Annotated[str, AfterValidator(bucket)]
PgIdentifier = Annotated[str, AfterValidator(pg_identifier)]
QueueName = Annotated[str, AfterValidator(queue_name)]
ImageRef = Annotated[str, AfterValidator(image_ref)]
KubeClassName = Annotated[str, AfterValidator(dns_subdomain_or_empty)]
RelativePath = Annotated[str, AfterValidator(relative_path)]
SafeText = Annotated[str, AfterValidator(safe_text)]
