"""Where the checks look: api URL, database and Redis URLs, storage, data and backup paths, domain.

Resolution order, last wins: the target's defaults < the service settings from ``SCHEDGEN_*``
environment < explicit overrides (``--url``, ``--database-url``, ...). An endpoint left empty is not
guessed: its checks report ``unknown`` with a hint naming the flag that supplies it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from schedgen_ops.config import Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.render.context import project_paths
from schedgen_ops.render.context import storage_url as rendered_storage_url
from schedgen_ops.runtime.locate import endpoints as stack_endpoints
from schedgen_ops.service.settings import ServiceSettings

#: RQ queues of the service, most urgent first.
QUEUES = ("high", "default", "low")


@dataclass
class Endpoints:
    """Everything a probe connects to. Secrets live in URLs and never appear in reports (see `redact`)."""

    target: str = "local"
    api_url: str = ""
    database_url: str = ""
    redis_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str = ""
    s3_access_key: str = ""
    s3_secret_key: str = ""
    s3_region: str = "us-east-1"
    data_dir: Path | None = None
    backup_dir: Path | None = None
    domain: str = ""
    tls_port: int = 443
    job_timeout_s: int = 300
    queues: tuple[str, ...] = QUEUES
    notes: dict[str, str] = field(default_factory=dict)


def redact(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host`` (hints and values never leak passwords)."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if ':' in creds else user}@{host}"


def _from_local_runtime(ep: Endpoints, project_dir: Path, config: Config | None) -> None:
    """What the running local stack uses (`LocalRuntime.endpoints`): an api replica's port, its
    generated URLs, its upload directory. Only fills what the environment left empty; does nothing
    when no stack was deployed."""
    live = stack_endpoints(project_dir, "local", config)
    if live.data_dir is not None:
        ep.data_dir = live.data_dir
    if live.tree is None:
        return
    if config is not None and not ep.storage_url:
        ep.storage_url = rendered_storage_url(config, "local", project_paths(project_dir))
    if live.replica_urls:
        ep.api_url = next(iter(live.replica_urls.values()))
    ep.database_url = ep.database_url or live.database_url
    ep.redis_url = ep.redis_url or live.redis_url


def resolve_endpoints(
    target: str,
    project_dir: Path,
    *,
    api_url: str | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    storage_url: str | None = None,
    backup_dir: Path | None = None,
    data_dir: Path | None = None,
    domain: str | None = None,
    config: Config | None = None,
) -> Endpoints:
    """Endpoints for ``target`` in ``project_dir`` with explicit overrides applied last.

    ``config`` (the project's `Config`, when it loads) supplies the api port, the backup directory, the
    queue names, the job timeout and, for compose/kubernetes, the public domain.
    """
    try:
        settings = ServiceSettings()  # type: ignore[call-arg]  # SCHEDGEN_* environment: URLs, credentials
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "SCHEDGEN_" + "_".join(str(p) for p in first["loc"]).upper()
        raise SchedgenError(
            f"invalid {name}: {first['msg']}", code="bad_config", hint=f"fix or unset {name}"
        ) from exc
    ep = Endpoints(target=target)
    ep.job_timeout_s = config.service.job_timeout_s if config is not None else settings.job_timeout_s
    ep.database_url = settings.database_url.get_secret_value()
    ep.redis_url = settings.redis_url.get_secret_value()
    ep.storage_url = settings.storage_url
    ep.s3_endpoint_url = settings.s3_endpoint_url
    ep.s3_access_key = settings.s3_access_key.get_secret_value()
    ep.s3_secret_key = settings.s3_secret_key.get_secret_value()
    ep.s3_region = settings.s3_region
    state_dir = ProjectLayout.of(project_dir).state
    ep.backup_dir = project_dir / "backups"
    if config is not None:
        ep.backup_dir = project_dir / config.backup.dir
        ep.queues = tuple(config.worker.queues)
    if target == "local":
        port = config.ports.api if config is not None else 8000
        ep.api_url = f"http://127.0.0.1:{port}"
        ep.data_dir = state_dir if state_dir.is_dir() else None
        _from_local_runtime(ep, project_dir, config)
    else:
        if config is not None and config.domain:
            ep.domain = config.domain
            ep.api_url = f"https://{config.domain}"
        if target == "compose" and config is not None and not config.edge.enabled:
            # No Traefik: the api itself is published on edge.api_bind (first replica's port).
            host = config.edge.api_host
            host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
            live = stack_endpoints(project_dir, "compose", config).api_url
            ep.api_url = live or f"http://{host}:{config.edge.api_port}"
        # compose and kubernetes keep Postgres/Redis on internal networks: on-call passes URLs (a
        # port-forward or exec tunnel) rather than this command guessing one.
        ep.notes["database_url"] = f"--database-url (the {target} stack does not publish Postgres)"
        ep.notes["redis_url"] = f"--redis-url (the {target} stack does not publish Redis)"
    for name, value in (
        ("api_url", api_url),
        ("database_url", database_url),
        ("redis_url", redis_url),
        ("storage_url", storage_url),
        ("domain", domain),
    ):
        if value is not None:
            setattr(ep, name, value)
    if backup_dir is not None:
        ep.backup_dir = backup_dir
    if data_dir is not None:
        ep.data_dir = data_dir
    return ep
