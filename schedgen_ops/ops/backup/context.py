"""Resolve what a backup command works on from options, SCHEDGEN_* environment and the project config.

Precedence for each value: command-line option > SCHEDGEN_* environment > the running local runtime's
own services (`LocalRuntime.endpoints`: its rendered operator secrets, uploads directory and control
socket) > the project's validated configuration (schedgen.yaml over its profile) > built-in default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from schedgen_ops.config import Config
from schedgen_ops.errors import SchedgenError
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
from schedgen_ops.runtime.endpoints import StackEndpoints
from schedgen_ops.runtime.locate import endpoints as stack_endpoints
from schedgen_ops.runtime.locate import locate
from schedgen_ops.targets import check_target

DEFAULT_DIR = "backups"
#: The compose project and namespace name when the project has no schedgen.yaml.
DEFAULT_NAME = "schedgen"


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
    config: Config | None = None
    supervisor_sock: Path | None = None

    @property
    def project_name(self) -> str | None:
        """The deployment's name from schedgen.yaml (recorded in, and compared with, each set)."""
        return self.config.name if self.config else None

    @property
    def database_name(self) -> str:
        """The app database a restore recreates: postgres.database from the config, else the default."""
        return (self.config.postgres.database if self.config else "") or DEFAULT_NAME

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
        config = self.config
        user = (config.postgres.user if config else "") or DEFAULT_NAME
        database = (config.postgres.database if config else "") or DEFAULT_NAME
        with_redis = bool(self.redis_url) or config is not None
        if self.target_name == "compose":
            minio = config is not None and config.minio.enabled
            return ComposeTarget(
                pg_user=user,
                pg_database=database,
                with_redis=with_redis,
                project=self.compose_project(self.stack_name),
                # File storage lives in the `uploads` volume, which the api service mounts.
                uploads_service="" if minio else "api",
            )
        return KubernetesTarget(
            pg_user=user, pg_database=database, with_redis=with_redis, kube=KubeTarget(self.namespace)
        )

    @property
    def stack_name(self) -> str:
        """The compose project name (schedgen.yaml's ``name``, else the default)."""
        return (self.config.name if self.config else "") or DEFAULT_NAME

    @property
    def namespace(self) -> str:
        """The Kubernetes namespace (schedgen.yaml's ``kubernetes.namespace``, else the default)."""
        return (self.config.kubernetes.namespace if self.config else "") or DEFAULT_NAME

    def compose_project(self, name: str) -> ComposeProject:
        """The live compose release's files (see `schedgen_ops.runtime.locate`)."""
        return locate(self.project).compose_project(name)

    def writers(self) -> Writers:
        if self.target_name == "compose":
            return ComposeWriters(self.compose_project(self.stack_name))
        if self.target_name == "kubernetes":
            return KubernetesWriters(KubeTarget(self.namespace))
        if self.supervisor_sock is not None:
            return SupervisorWriters(self.supervisor_sock)
        return NoWriters()


def _runtime_env(live: StackEndpoints) -> dict[str, str]:
    """URLs of the local runtime's own Postgres/Redis/uploads when it runs for this project."""
    if not live.running:
        return {}
    values = {k: v for k, v in live.ops_env.items() if k.startswith("SCHEDGEN_")}
    if live.uploads_dir is not None:
        values.setdefault("SCHEDGEN_STORAGE_URL", f"file://{live.uploads_dir}")
    return values


def _load_config(project: Path) -> Config | None:
    """The project's configuration (service secrets in the environment hidden), None without schedgen.yaml."""
    if not (project / "schedgen.yaml").is_file():
        return None
    from schedgen_ops.config.ops_loader import load_ops_config

    return load_ops_config(project)


def _secret(value: SecretStr | str | None) -> str:
    if value is None:
        return ""
    return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


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
    service = config.service if config else None
    live = stack_endpoints(project, "local") if target == "local" else None
    runtime_env = _runtime_env(live) if live else {}

    def pick(option: str | None, env: str, attr: str) -> str:
        if option:
            return option
        if os.environ.get(env):
            return os.environ[env]
        if runtime_env.get(env):
            return runtime_env[env]
        return _secret(getattr(service, attr)) if service is not None else ""

    base = directory or Path(
        os.environ.get("SCHEDGEN_BACKUP_DIR") or (config.backup.dir if config else "") or DEFAULT_DIR
    )
    if not base.is_absolute():
        base = project / base
    policy = Policy()
    if config is not None:
        policy = Policy(
            keep_daily=config.backup.keep_daily,
            keep_weekly=config.backup.keep_weekly,
            keep_monthly=config.backup.keep_monthly,
        )
    if supervisor_sock is None and live is not None:
        supervisor_sock = live.supervisor_sock
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
        profile=config.profile if config else None,
        policy=policy,
        config=config,
        supervisor_sock=supervisor_sock,
    )
