"""The rendered secret files (``<target>/secrets/<stem>.env``, mode 0600): one per component, each holding
only the credentials that component needs (roles and users: schedgen_ops.config.roles).

    app                the service: its own Postgres role, Redis user and MinIO user
    ops / backup       operator-side commands (backup, restore, health, checklist) on the local runtime /
                       the Kubernetes backup CronJob: the database owner role and Redis ``default``
    (the local runtime gets app, ops and postgres-init only: no containers, exporters or MinIO)
    postgres           the server container: the superuser password only
    pgbackrest         compose with backup.pitr on: the pgBackRest repository's cipher pass (postgres)
    postgres-init      the one-shot that creates the roles (roles.sql): superuser + every role password
    postgres-exporter  a pg_monitor role;  redis-exporter: the exporter ACL user
    redis              REDISCLI_AUTH inside the Redis container (``default``: backups, probes)
    minio / minio-init root credentials; minio-init also creates the app's bucket-limited user
    alertmanager       the webhook URL (a secret: its path is often the key)
"""

from __future__ import annotations

from schedgen_ops.config.model import Config
from schedgen_ops.config.roles import (
    REDIS_APP,
    REDIS_BACKUP,
    REDIS_EXPORTER,
    PgRoles,
)

#: Environment of the scheduled backup's failure notice (schedgen_ops.ops.backup.webhook).
BACKUP_WEBHOOK_ENV = "SCHEDGEN_BACKUP_WEBHOOK_URL"


def backup_webhook(secrets: dict[str, str]) -> str:
    """Where scheduled backups report failures: BACKUP_WEBHOOK_URL, else the alert webhook."""
    return secrets.get("BACKUP_WEBHOOK_URL") or secrets.get("ALERT_WEBHOOK_URL") or ""


def secret_env_files(
    config: Config, secrets: dict[str, str], target: str, hosts: dict[str, str]
) -> dict[str, dict[str, str]]:
    """Per-component secret environment (file stem -> KEY -> value) for one target."""
    roles = PgRoles.of(config)
    pg_port = config.ports.postgres if target == "local" else 5432
    redis_port = config.ports.redis if target == "local" else 6379

    def pg_url(user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@{hosts['postgres']}:{pg_port}/{roles.database}"

    def redis_url(user: str, password: str) -> str:
        return f"redis://{user}:{password}@{hosts['redis']}:{redis_port}/0"

    owner_pw, app_pw = secrets["POSTGRES_PASSWORD"], secrets["POSTGRES_APP_PASSWORD"]
    super_pw, exporter_pw = secrets["POSTGRES_SUPERUSER_PASSWORD"], secrets["POSTGRES_EXPORTER_PASSWORD"]
    backup_rpw = secrets["REDIS_BACKUP_PASSWORD"]
    s3 = (
        {
            "SCHEDGEN_S3_ACCESS_KEY": secrets["S3_ACCESS_KEY"],
            "SCHEDGEN_S3_SECRET_KEY": secrets["S3_SECRET_KEY"],
        }
        if config.minio.enabled
        else {}
    )
    files: dict[str, dict[str, str]] = {
        "app": {
            "SCHEDGEN_DATABASE_URL": pg_url(roles.app, app_pw),
            "SCHEDGEN_REDIS_URL": redis_url(REDIS_APP, secrets["REDIS_PASSWORD"]),
            "SCHEDGEN_OPS_TOKEN": secrets["OPS_TOKEN"],
            **s3,
        },
        "postgres": {"POSTGRES_PASSWORD": super_pw},
        "postgres-init": {
            "PGPASSWORD": super_pw,
            "SCHEDGEN_PG_OWNER_PASSWORD": owner_pw,
            "SCHEDGEN_PG_APP_PASSWORD": app_pw,
            "SCHEDGEN_PG_EXPORTER_PASSWORD": exporter_pw,
        },
        "redis": {"REDIS_PASSWORD": backup_rpw, "REDISCLI_AUTH": backup_rpw},
        "postgres-exporter": {"DATA_SOURCE_NAME": pg_url(roles.exporter, exporter_pw) + "?sslmode=disable"},
        "redis-exporter": {
            "REDIS_USER": REDIS_EXPORTER,
            "REDIS_PASSWORD": secrets["REDIS_EXPORTER_PASSWORD"],
        },
    }
    operator = {
        "SCHEDGEN_DATABASE_URL": pg_url(roles.owner, owner_pw),
        "SCHEDGEN_REDIS_URL": redis_url(REDIS_BACKUP, backup_rpw),
        **s3,
    }
    if target == "local":
        # supervisord runs Postgres and Redis from the binaries: no containers, exporters or MinIO to feed.
        return {
            "app": files["app"],
            "ops": {**operator, "SCHEDGEN_OPS_TOKEN": secrets["OPS_TOKEN"]},
            "postgres-init": files["postgres-init"],
        }
    if target == "kubernetes":
        webhook = backup_webhook(secrets)
        files["backup"] = {**operator, **({BACKUP_WEBHOOK_ENV: webhook} if webhook else {})}
        # The CronJob signs its manifests like `schedgen backup` does (ops/backup/signing.py KEY_ENV).
        if secrets.get("BACKUP_HMAC_KEY"):
            files["backup"]["SCHEDGEN_BACKUP_HMAC_KEY"] = secrets["BACKUP_HMAC_KEY"]
    if target == "compose" and config.backup.pitr.enabled:
        # The postgres container's pgBackRest (archive-push, backups) reads the repository key from here.
        from schedgen_ops.render.pitr import compose_cipher_env

        files["pgbackrest"] = compose_cipher_env(secrets)
    files["grafana"] = {"GF_SECURITY_ADMIN_PASSWORD": secrets["GRAFANA_ADMIN_PASSWORD"]}
    alert = secrets.get("ALERT_WEBHOOK_URL", "")
    if alert:
        files["alertmanager"] = {"ALERT_WEBHOOK_URL": alert} if target == "compose" else {"url": alert}
    if config.minio.enabled:
        root = {
            "MINIO_ROOT_USER": secrets["MINIO_ROOT_USER"],
            "MINIO_ROOT_PASSWORD": secrets["MINIO_ROOT_PASSWORD"],
        }
        files["minio"] = root
        files["minio-init"] = {
            **root,
            "MINIO_APP_ACCESS_KEY": secrets["S3_ACCESS_KEY"],
            "MINIO_APP_SECRET_KEY": secrets["S3_SECRET_KEY"],
        }
    if target == "kubernetes" and config.postgres.instances > 1:
        files["postgres-app"] = {"username": roles.owner, "password": owner_pw}
        files["postgres-superuser"] = {"username": roles.superuser, "password": super_pw}
    if target == "kubernetes" and config.minio.enabled and config.minio.nodes > 1:
        files["minio-tenant"] = {
            "config.env": f"export MINIO_ROOT_USER={secrets['MINIO_ROOT_USER']}\n"
            f"export MINIO_ROOT_PASSWORD={secrets['MINIO_ROOT_PASSWORD']}"
        }
    return files
