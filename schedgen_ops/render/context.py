"""The template context: what every template may use (documented in docs/CONFIGURATION.md).

Secret values never reach a template that is not a secrets file: templates see `secrets` only so
local-runtime templates can point at files; URLs with passwords are written by `secret_env_files`
into 0600 env files that compose `env_file:`, kustomize `secretGenerator` and supervisord read.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from schedgen_ops import __version__
from schedgen_ops.config.model import SECRET_SERVICE_FIELDS, Config
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.render.pitr import archive_settings, compose_postgres, stanza
from schedgen_ops.service.settings import to_env

#: Secrets read by `schedgen backup` only (signing key, pgBackRest cipher pass): adding them rolls no pod.
_NOT_HASHED = frozenset({"BACKUP_HMAC_KEY", "PGBACKREST_CIPHER_PASS"})

# Host names of the data services per target (compose service names / Kubernetes Services).
HOSTS: dict[str, dict[str, str]] = {
    "compose": {"postgres": "postgres", "redis": "redis", "minio": "minio", "api": "api"},
    "kubernetes": {"postgres": "postgres", "redis": "redis", "minio": "minio", "api": "api"},
    "local": {"postgres": "127.0.0.1", "redis": "127.0.0.1", "minio": "127.0.0.1", "api": "127.0.0.1"},
}


def project_paths(project_dir: Path) -> dict[str, str]:
    """Project data paths used by the local runtime and the systemd/cron units."""
    layout = ProjectLayout.of(project_dir)
    state = layout.state
    return {
        "project": str(project_dir),
        "state": str(state),
        "data": str(layout.data),
        "postgres_data": str(layout.postgres_data),
        "redis_data": str(layout.data / "redis"),
        "uploads": str(layout.data / "uploads"),
        "metrics": str(layout.data / "metrics"),
        "logs": str(layout.logs),
        "run": str(layout.run),
        "secrets_file": str(layout.secrets),
        "backups": str(project_dir / "backups"),
    }


def _hosts(config: Config, target: str) -> dict[str, str]:
    hosts = dict(HOSTS[target])
    if target == "kubernetes" and config.postgres.instances > 1:
        hosts["postgres"] = "postgres-rw"
    if target == "kubernetes" and config.redis.sentinel:
        hosts["redis"] = "redis-master"
    if target == "kubernetes" and config.minio.nodes > 1:
        hosts["minio"] = "minio"
    return hosts


def storage_url(config: Config, target: str, paths: dict[str, str]) -> str:
    if config.minio.enabled:
        return f"s3://{config.minio.bucket}/uploads"
    if target == "local":
        return f"file://{paths['uploads']}"
    return "file:///data/uploads"


def role_env(config: Config, target: str, role: str, paths: dict[str, str]) -> dict[str, str]:
    """Non-secret SCHEDGEN_* environment of one role (api or worker) on one target."""
    settings = config.role_settings(role)  # type: ignore[arg-type]
    values = {k: v for k, v in settings.model_dump().items() if k not in SECRET_SERVICE_FIELDS}
    values["storage_url"] = storage_url(config, target, paths)
    if config.minio.enabled:
        values["s3_endpoint_url"] = f"http://{_hosts(config, target)['minio']}:{config.ports.minio}"
    if target != "local":
        values["metrics_dir"] = "/tmp/metrics"
        # One worker per container: every replica serves its metrics on worker.metrics_port.
        values["worker_metrics_port"] = config.worker.metrics_port
        values["trusted_proxies"] = trusted_proxies(config, target, values["trusted_proxies"])
    elif not values.get("metrics_dir"):
        values["metrics_dir"] = paths["metrics"] + f"/{role}"
    return to_env(values)


def trusted_proxies(config: Config, target: str, configured: list[str]) -> list[str]:
    """Whose X-Forwarded-For the api believes: the edge's own network only, never all of RFC 1918.

    compose with Traefik: the edge network's fixed subnet; Kubernetes: the ingress controller's pod
    network; compose without Traefik (and local): ``service.trusted_proxies``, the operator's proxy.
    """
    if target == "kubernetes":
        return list(config.kubernetes.ingress_cidrs)
    if target == "compose" and config.edge.enabled:
        return [config.edge.subnet]
    return list(configured)


def secret_env_files(config: Config, secrets: dict[str, str], target: str) -> dict[str, dict[str, str]]:
    """Per-component secret environment (file stem -> KEY -> value) for one target (see secret_files)."""
    from schedgen_ops.render.secret_files import secret_env_files as files

    return files(config, secrets, target, _hosts(config, target))


def build_context(config: Config, secrets: dict[str, str], target: str, project_dir: Path) -> dict[str, Any]:
    """Everything a template may use, for one target ("compose", "kubernetes", "local")."""
    paths = project_paths(project_dir)
    envs = {role: role_env(config, target, role, paths) for role in ("api", "worker")}
    # `health:` is read only by `schedgen health` on the operator's side: changing it must not roll pods.
    rendered = config.model_dump(mode="json", exclude={"health"})
    # The backup signing key is read by `schedgen backup` (and the CronJob), not by a pod: adding it on a
    # project's first backup must not roll the api and workers.
    hashed_secrets = sorted((k, v) for k, v in secrets.items() if k not in _NOT_HASHED)
    digest = hashlib.sha256(json.dumps([rendered, hashed_secrets], sort_keys=True).encode()).hexdigest()[:16]
    return {
        "config": config,
        "secrets": secrets,
        "env": envs["api"],
        "role_env": envs,
        "paths": paths,
        "target": target,
        "version": __version__,
        "image": f"{config.images.service}:{__version__}",
        "hosts": _hosts(config, target),
        "budget": config.connection_budget(),
        "max_connections": config.max_connections(),
        # WAL archiving through pgBackRest when backup.pitr is on (render/pitr.py).
        "pg_tuning": {**config.postgres_tuning(), **archive_settings(config, target, Path(paths["state"]))},
        "pitr_stanza": stanza(config),
        # compose with PITR on: the derived postgres image, its archive settings and pgbackrest.conf.
        "pitr_compose": compose_postgres(config) if target == "compose" else None,
        "api_settings": config.role_settings("api"),
        "worker_settings": config.role_settings("worker"),
        "config_hash": digest,
        "stop_grace_s": config.role_settings("worker").job_timeout_s + 30,
        "api_publish_range": api_publish_range(config),
        "backup_command": backup_command(config, "/backups"),
        **least_privilege(config, secrets),
    }


def least_privilege(config: Config, secrets: dict[str, str]) -> dict[str, Any]:
    """Role names, Redis ACL lines (password hashes only) and which webhooks exist (never their URLs)."""
    from schedgen_ops.config.roles import PgRoles, redis_acl_lines
    from schedgen_ops.render.secret_files import backup_webhook

    return {
        "pg_roles": PgRoles.of(config),
        "redis_acl": redis_acl_lines(secrets, sentinel=config.redis.sentinel),
        "has_alert_webhook": bool(secrets.get("ALERT_WEBHOOK_URL")),
        "has_backup_webhook": bool(backup_webhook(secrets)),
    }


def api_publish_range(config: Config) -> str:
    """Host ports of the api when the edge is off: one per possible replica, from edge.api_bind's port."""
    first = config.edge.api_port
    last = first + max(1, config.api.max_replicas) - 1
    return str(first) if last == first else f"{first}-{last}"


def backup_command(config: Config, directory: str) -> str:
    """The scheduled backup run inside a container: back up, verify, prune with the profile's retention."""
    b = config.backup
    return (
        f"schedgen backup --dir {directory} && schedgen backup verify --dir {directory} && "
        f"schedgen backup prune --dir {directory} --keep-daily {b.keep_daily} "
        f"--keep-weekly {b.keep_weekly} --keep-monthly {b.keep_monthly}"
    )
