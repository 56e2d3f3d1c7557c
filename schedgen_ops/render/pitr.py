"""Point-in-time recovery settings shared by every runtime: the stanza, Postgres' archive settings and
the pgBackRest configuration (templates/pgbackrest/pgbackrest.conf.j2).

Pure functions of the validated config (no I/O), so the local runtime's Postgres command line, the
compose postgresql.conf and `schedgen backup` agree on one archive_command.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import jinja2

from schedgen_ops.config.model import Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.resources import data_dir, data_file

#: Where the local runtime's pgBackRest files live, relative to the project's .schedgen/.
LOCAL_DIR = "pgbackrest"
#: Inside the derived compose postgres image (container/postgres-pitr.Dockerfile). pgBackRest's default
#: path, so the restore_command `pgbackrest restore` writes needs no --config.
CONTAINER_CONF = "/etc/pgbackrest/pgbackrest.conf"
#: The compose postgres service's PGDATA and the mount point of its repository volume.
CONTAINER_PGDATA = "/var/lib/postgresql/data/pgdata"
CONTAINER_BASE = "/var/lib/pgbackrest"
#: The Dockerfile of the derived image (shipped in the wheel, like container/Dockerfile).
PITR_DOCKERFILE = "container/postgres-pitr.Dockerfile"
#: Repository name (under images.service's namespace) of the derived image.
PITR_REPOSITORY = "postgres-pgbackrest"
#: Environment variable pgBackRest reads repo1-cipher-pass from (the conf file holds no secret on compose).
CIPHER_ENV_VAR = "PGBACKREST_REPO1_CIPHER_PASS"


def stanza(config: Config) -> str:
    """pgBackRest's stanza name: the deployment's name, reduced to the characters a stanza allows."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", config.name or "schedgen").strip("-") or "schedgen"


def local_paths(state_dir: Path, config: Config) -> dict[str, str]:
    """The local runtime's pgBackRest config, repository, spool, lock and log directories."""
    base = state_dir / LOCAL_DIR
    repo = config.backup.pitr.repo_path
    repo_dir = Path(repo) if repo and Path(repo).is_absolute() else state_dir.parent / repo if repo else None
    return {
        "base": str(base),
        "conf": str(base / "pgbackrest.conf"),
        "repo": str(repo_dir or base / "repo"),
        "spool": str(base / "spool"),
        "lock": str(base / "lock"),
        "log": str(base / "log"),
    }


def container_paths() -> dict[str, str]:
    """pgBackRest's directories inside the compose postgres container: repository, spool and log on the
    repository volume, the lock on the /tmp tmpfs (the root filesystem is read-only)."""
    return {
        "base": CONTAINER_BASE,
        "conf": CONTAINER_CONF,
        "repo": f"{CONTAINER_BASE}/repo",
        "spool": f"{CONTAINER_BASE}/spool",
        "lock": "/tmp/pgbackrest",
        "log": f"{CONTAINER_BASE}/log",
    }


def compose_image(config: Config) -> str:
    """The derived postgres image of a compose stack with PITR on, tagged by content: a hash of the
    Dockerfile and the configured postgres.image, so changing either names a new image to build."""
    digest = hashlib.sha256()
    digest.update(data_file(PITR_DOCKERFILE).read_bytes())
    digest.update(b"\0" + config.postgres.image.encode())
    namespace = config.images.service.rpartition("/")[0] or "schedgen"
    return f"{namespace}/{PITR_REPOSITORY}:{digest.hexdigest()[:16]}"


def is_pitr_image(ref: str) -> bool:
    """Whether ``ref`` names a derived image of `compose_image` (a deploy builds it when missing)."""
    return ref.rpartition(":")[0].rpartition("/")[2] == PITR_REPOSITORY


def compose_postgres(config: Config) -> dict[str, Any] | None:
    """What the compose postgres service needs with PITR on (None when off): the derived image, the
    archive settings for its command line and pgbackrest.conf (no secret in it: the cipher pass is
    PGBACKREST_REPO1_CIPHER_PASS in secrets/pgbackrest.env)."""
    if not config.backup.pitr.enabled:
        return None
    if config.backup.pitr.repo != "local":
        raise SchedgenError(
            "compose keeps the pgBackRest repository on its own volume: backup.pitr.repo=s3 is not "
            "supported on compose yet",
            code="config_invalid",
            hint="set backup.pitr.repo=local (the default), or use the local or kubernetes runtime",
            exit_code=2,
        )
    settings = {
        "archive_mode": "on",
        "archive_command": archive_command(CONTAINER_CONF, stanza(config)),
        "archive_timeout": f"{config.backup.pitr.archive_timeout_s}s",
    }
    conf = pgbackrest_conf(
        config,
        stanza_name=stanza(config),
        pg_path=CONTAINER_PGDATA,
        pg_port=5432,
        paths=container_paths(),
        cipher_pass="",
    )
    return {"image": compose_image(config), "settings": settings, "conf": conf}


def archive_command(conf: str, stanza_name: str) -> str:
    return f"pgbackrest --config={conf} --stanza={stanza_name} archive-push %p"


def archive_settings(config: Config, target: str, state_dir: Path) -> dict[str, str]:
    """Postgres settings that archive WAL through pgBackRest (empty when PITR is off).

    For ``local`` the values go on supervisord's command line (`-c key=value`): the command is quoted
    for its shlex split and its ``%`` doubled for its ``%(...)s`` expansion.
    """
    pitr = config.backup.pitr
    # kubernetes: CloudNativePG archives itself (k8s/postgres.yaml). compose: the derived image's command
    # line carries them (compose_postgres), since the official image has no pgBackRest.
    if not pitr.enabled or target != "local":
        return {}
    command = archive_command(local_paths(state_dir, config)["conf"], stanza(config))
    command = '"' + command.replace("%", "%%") + '"'
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": command,
        "archive_timeout": f"{pitr.archive_timeout_s}s",
    }


def pgbackrest_conf(
    config: Config,
    *,
    stanza_name: str,
    pg_path: str,
    pg_port: int,
    paths: dict[str, str],
    cipher_pass: str,
    s3: dict[str, str] | None = None,
) -> str:
    """The text of pgbackrest.conf (holds the cipher pass unless it is empty: then write it 0600)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates") / "pgbackrest")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    context: dict[str, Any] = {
        "pitr": config.backup.pitr,
        "stanza": stanza_name,
        "pg_path": pg_path,
        "pg_port": pg_port,
        "paths": paths,
        "cipher_pass": cipher_pass,
        "s3": s3 or {},
    }
    return env.get_template("pgbackrest.conf.j2").render(**context)


def compose_cipher_env(secrets: dict[str, str]) -> dict[str, str]:
    """secrets/pgbackrest.env of a compose stack: the repository's cipher pass, as pgBackRest reads it."""
    value = secrets.get("PGBACKREST_CIPHER_PASS", "")
    if not value:
        raise SchedgenError(
            "backup.pitr is on but the project has no PGBACKREST_CIPHER_PASS secret (it encrypts the "
            "pgBackRest repository)",
            code="secrets_missing",
            hint="add it with `schedgen secrets rotate PGBACKREST_CIPHER_PASS` (safe while no repository "
            "exists yet), then render again",
        )
    return {CIPHER_ENV_VAR: value}
