"""Resolve what a backup command works on from options, SCHEDGEN_* environment and the project config.

Precedence for each value: command-line option > SCHEDGEN_* environment > the running local runtime's
own services (its rendered secrets and data directory) > the project's validated configuration
(schedgen.yaml over its profile) > built-in default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.ops.backup.retention import Policy
from schedgen_ops.ops.backup.signing import SigningKey, load_key
from schedgen_ops.ops.backup.sources import S3Settings
from schedgen_ops.ops.backup.targets import ComposeTarget, KubernetesTarget, LocalTarget, Target
from schedgen_ops.ops.backup.writers import (
    ComposeWriters,
    KubernetesWriters,
    NoWriters,
    SupervisorWriters,
    Writers,
)
from schedgen_ops.runtime.argv import ComposeProject, KubeTarget
from schedgen_ops.targets import check_target

DEFAULT_DIR = "backups"
#: The local runtime's supervisord control socket (see schedgen_ops.runtime.local).


@dataclass
class BackupContext:
    project: Path
    directory: Path
    target_name: str
    database_url: str = ""
    redis_url: str = ""
    storage_url: str = ""
    s3: S3Settings = field(default_factory=S3Settings)
    profile: str | None = None
    policy: Policy = field(default_factory=Policy)
    config: Any = None
    supervisor_sock: Path | None = None

    @property
    def project_name(self) -> str | None:
        """The deployment's name from schedgen.yaml (recorded in, and compared with, each set)."""
        return getattr(self.config, "name", None)

    def signing_key(self) -> tuple[SigningKey, str | None]:
        """The key manifests are signed and checked with, and a note when it was just generated."""
        return load_key(self.project)

    def target(self) -> Target:
        if self.target_name == "local":
            if not self.database_url:
                raise SchedgenError(
                    "no database URL for the local target",
                    code="backup_no_database",
                    hint="pass --database-url or set SCHEDGEN_DATABASE_URL",
                )
            return LocalTarget(self.database_url, self.redis_url or None)
        name = getattr(self.config, "name", None) or "schedgen"
        pg = getattr(self.config, "postgres", None)
        user = getattr(pg, "user", None) or "schedgen"
        database = getattr(pg, "database", None) or "schedgen"
        with_redis = bool(self.redis_url) or self.config is not None
        if self.target_name == "compose":
            minio = bool(getattr(getattr(self.config, "minio", None), "enabled", False))
            return ComposeTarget(
                pg_user=user,
                pg_database=database,
                with_redis=with_redis,
                project=self.compose_project(name),
                # File storage lives in the `uploads` volume, which the api service mounts.
                uploads_service="" if minio else "api",
            )
        namespace = getattr(getattr(self.config, "kubernetes", None), "namespace", None) or "schedgen"
        return KubernetesTarget(
            pg_user=user, pg_database=database, with_redis=with_redis, kube=KubeTarget(namespace)
        )

    def compose_project(self, name: str) -> ComposeProject:
        """The live compose release's files (see `schedgen_ops.runtime.locate`)."""
        from schedgen_ops.runtime.locate import locate

        return locate(self.project).compose_project(name)

    def writers(self) -> Writers:
        if self.target_name == "compose":
            return ComposeWriters(self.compose_project(getattr(self.config, "name", None) or "schedgen"))
        if self.target_name == "kubernetes":
            namespace = getattr(getattr(self.config, "kubernetes", None), "namespace", None) or "schedgen"
            return KubernetesWriters(KubeTarget(namespace))
        if self.supervisor_sock is not None:
            return SupervisorWriters(self.supervisor_sock)
        return NoWriters()


def _local_runtime_env(project: Path) -> dict[str, str]:
    """URLs of the local runtime's own Postgres/Redis/uploads when it runs for this project."""
    try:
        from schedgen_ops.runtime.local import LocalRuntime

        runtime = LocalRuntime(project)
        if not runtime.is_running():
            return {}
        values = {k: v for k, v in runtime.secrets().items() if k.startswith("SCHEDGEN_")}
    except (ImportError, OSError, SchedgenError):
        return {}
    uploads = runtime.data_dir / "uploads"
    if uploads.is_dir():
        values.setdefault("SCHEDGEN_STORAGE_URL", f"file://{uploads}")
    return values


def _local_runtime_sock(project: Path) -> Path | None:
    """The local runtime's control socket when its supervisord runs for this project, else None."""
    try:
        from schedgen_ops.runtime.local import LocalRuntime
    except ImportError:
        path = ProjectLayout.of(project).supervisor_sock
        return path if path.exists() else None
    runtime = LocalRuntime(project)
    return runtime.sock if runtime.is_running() else None


def _load_config(project: Path) -> Any:
    """The project's configuration (service secrets in the environment hidden), None without schedgen.yaml."""
    if not (project / "schedgen.yaml").is_file():
        return None
    from schedgen_ops.config.ops_loader import load_ops_config

    return load_ops_config(project)


def _secret(value: Any) -> str:
    if value is None:
        return ""
    getter = getattr(value, "get_secret_value", None)
    return str(getter() if getter else value)


def resolve_context(
    project: Path,
    *,
    target: str = "local",
    directory: Path | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    storage_url: str | None = None,
    supervisor_sock: Path | None = None,
) -> BackupContext:
    check_target(target)
    config = _load_config(project)
    service = getattr(config, "service", None)
    backup_cfg = getattr(config, "backup", None)

    runtime_env = _local_runtime_env(project) if target == "local" else {}

    def pick(option: str | None, env: str, attr: str) -> str:
        if option:
            return option
        if os.environ.get(env):
            return os.environ[env]
        if runtime_env.get(env):
            return runtime_env[env]
        return _secret(getattr(service, attr, None))

    base = directory or Path(
        os.environ.get("SCHEDGEN_BACKUP_DIR") or getattr(backup_cfg, "dir", None) or DEFAULT_DIR
    )
    if not base.is_absolute():
        base = project / base
    policy = Policy(
        keep_daily=getattr(backup_cfg, "keep_daily", 7),
        keep_weekly=getattr(backup_cfg, "keep_weekly", 4),
        keep_monthly=getattr(backup_cfg, "keep_monthly", 12),
    )
    if supervisor_sock is None and target == "local":
        supervisor_sock = _local_runtime_sock(project)
    return BackupContext(
        project=project,
        directory=base,
        target_name=target,
        database_url=pick(database_url, "SCHEDGEN_DATABASE_URL", "database_url"),
        redis_url=pick(redis_url, "SCHEDGEN_REDIS_URL", "redis_url"),
        storage_url=pick(storage_url, "SCHEDGEN_STORAGE_URL", "storage_url"),
        s3=S3Settings(
            endpoint_url=pick(None, "SCHEDGEN_S3_ENDPOINT_URL", "s3_endpoint_url"),
            access_key=pick(None, "SCHEDGEN_S3_ACCESS_KEY", "s3_access_key"),
            secret_key=pick(None, "SCHEDGEN_S3_SECRET_KEY", "s3_secret_key"),
            region=pick(None, "SCHEDGEN_S3_REGION", "s3_region") or "us-east-1",
        ),
        profile=getattr(config, "profile", None),
        policy=policy,
        config=config,
        supervisor_sock=supervisor_sock,
    )
