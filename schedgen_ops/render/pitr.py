"""Point-in-time recovery settings shared by every runtime: the stanza, Postgres' archive settings and
the pgBackRest configuration (templates/pgbackrest/pgbackrest.conf.j2).

Pure functions of the validated config (no I/O), so the local runtime's Postgres command line, the
compose postgresql.conf and `schedgen backup` agree on one archive_command.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

from schedgen_ops.config.model import Config
from schedgen_ops.resources import data_dir

#: Where the local runtime's pgBackRest files live, relative to the project's .schedgen/.
LOCAL_DIR = "pgbackrest"
#: Inside the derived compose postgres image (container/postgres-pgbackrest).
CONTAINER_CONF = "/etc/pgbackrest/pgbackrest.conf"


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


def archive_command(conf: str, stanza_name: str) -> str:
    return f"pgbackrest --config={conf} --stanza={stanza_name} archive-push %p"


def archive_settings(config: Config, target: str, state_dir: Path) -> dict[str, str]:
    """Postgres settings that archive WAL through pgBackRest (empty when PITR is off).

    For ``local`` the values go on supervisord's command line (`-c key=value`): the command is quoted
    for its shlex split and its ``%`` doubled for its ``%(...)s`` expansion.
    """
    pitr = config.backup.pitr
    # kubernetes: CloudNativePG archives itself (k8s/postgres.yaml). compose: the official postgres image
    # has no pgBackRest, and an archive_command that always fails makes pg_wal grow until the disk fills,
    # so compose archives nothing until it runs the derived image (docs/BACKUP.md).
    if not pitr.enabled or target != "local":
        return {}
    conf = local_paths(state_dir, config)["conf"] if target == "local" else CONTAINER_CONF
    command = archive_command(conf, stanza(config))
    if target == "local":
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
    """The text of pgbackrest.conf (holds the cipher pass: write it 0600)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates") / "pgbackrest")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
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
