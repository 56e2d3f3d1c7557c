"""Drive pgBackRest for one project's local Postgres: its configuration, argv and checked runs.

pgBackRest runs as the user Postgres runs as (``nobody`` when schedgen runs as root): the repository,
spool and lock directories are shared with the ``archive-push`` Postgres runs, and files a root-run
backup left behind would make archiving fail. The local Postgres listens on TCP only (no unix socket),
so every run gets ``PGHOST=127.0.0.1`` and the superuser's password in its environment, never on argv.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgen_ops.config.model import Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.render.pitr import local_paths, pgbackrest_conf, stanza
from schedgen_ops.runtime.dataservices import SERVICE_USER, running_as_root

CIPHER_NAME = "PGBACKREST_CIPHER_PASS"
CIPHER_ENV = "SCHEDGEN_PGBACKREST_CIPHER_PASS"
_TAIL = 1200


@dataclass
class PitrSite:
    """One project's local Postgres (data directory, port, superuser) and its pgBackRest repository."""

    config: Config
    stanza: str
    paths: dict[str, str]
    pg_data: Path
    pg_port: int
    superuser_password: str
    cipher_pass: str
    s3: dict[str, str] = field(default_factory=dict)
    binary: str = "pgbackrest"

    @classmethod
    def for_project(cls, project: Path, config: Config, environ: dict[str, str] | None = None) -> PitrSite:
        from schedgen_ops.config.secrets import load_secrets

        env = dict(os.environ if environ is None else environ)
        layout = ProjectLayout.of(project.resolve())
        state = layout.state
        secrets = load_secrets(project)
        return cls(
            config=config,
            stanza=stanza(config),
            paths=local_paths(state, config),
            pg_data=layout.postgres_data,
            pg_port=config.ports.postgres,
            superuser_password=secrets["POSTGRES_SUPERUSER_PASSWORD"],
            cipher_pass=cipher_pass(project, env),
            s3=s3_options(config, secrets, env),
        )

    # --------------------------------------------------------------------------------------- files

    def connect_superuser(self, timeout_s: int = 3) -> Any:
        """A psycopg connection to the live server as ``postgres`` (pg_stat_archiver, recovery state)."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.pg_port,
            user="postgres",
            password=self.superuser_password,
            dbname="postgres",
            connect_timeout=timeout_s,
        )

    def last_archived(self) -> dt.datetime | None:
        """pg_stat_archiver.last_archived_time of the live server, None when it does not answer."""
        import psycopg

        try:
            with self.connect_superuser() as conn:
                row = conn.execute("SELECT last_archived_time FROM pg_stat_archiver").fetchone()
        except psycopg.Error:
            return None
        value: dt.datetime | None = row[0] if row and row[0] else None
        return value

    def is_primary(self) -> bool:
        """Whether the live server accepts connections and is out of recovery (pgBackRest needs that)."""
        import psycopg

        try:
            with self.connect_superuser() as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return bool(row) and row[0] is False

    def write_conf(self) -> Path:
        """pgbackrest.conf (0600, owned by Postgres' user) and the directories it names."""
        conf = Path(self.paths["conf"])
        for key in ("base", "spool", "lock", "log") + (
            ("repo",) if self.config.backup.pitr.repo == "local" else ()
        ):
            path = Path(self.paths[key])
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            _give_to_service_user(path)
        text = pgbackrest_conf(
            self.config,
            stanza_name=self.stanza,
            pg_path=str(self.pg_data),
            pg_port=self.pg_port,
            paths=self.paths,
            cipher_pass=self.cipher_pass,
            s3=self.s3,
        )
        tmp = conf.with_name(conf.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        _give_to_service_user(tmp)
        os.replace(tmp, conf)
        return conf

    # --------------------------------------------------------------------------------------- commands

    def argv(self, command: str, *options: str) -> list[str]:
        """``pgbackrest --config=... --stanza=... [options] command``, as Postgres' user when root."""
        return [
            *as_service_user(),
            self.binary,
            f"--config={self.paths['conf']}",
            f"--stanza={self.stanza}",
            *options,
            command,
        ]

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TZ")}
        return {**base, "PGHOST": "127.0.0.1", "PGPASSWORD": self.superuser_password, "HOME": "/tmp"}

    def run(self, command: str, *options: str, what: str, timeout_s: float = 3600) -> str:
        if shutil.which(self.binary) is None:
            raise SchedgenError(
                "pgbackrest is not installed: point-in-time recovery needs it",
                code="missing_binary",
                hint="apt-get install -y pgbackrest (or turn it off: --set backup.pitr.enabled=false)",
            )
        argv = self.argv(command, *options)
        try:
            out = subprocess.run(
                argv, capture_output=True, text=True, env=self.env(), timeout=timeout_s, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise SchedgenError(
                f"{what} did not finish within {timeout_s:.0f}s", code="pgbackrest_timeout"
            ) from exc
        if out.returncode != 0:
            detail = (out.stderr.strip() or out.stdout.strip())[-_TAIL:]
            raise SchedgenError(
                f"{what} failed: pgbackrest {command} exited with code {out.returncode}: {detail}",
                code="pgbackrest_failed",
                hint=f"see the logs in {self.paths['log']}",
            )
        return out.stdout

    def info(self) -> dict[str, Any]:
        """The stanza's ``pgbackrest info --output=json`` entry ({} when the stanza does not exist)."""
        out = self.run("info", "--output=json", what="reading the repository")
        stanzas = json.loads(out or "[]")
        for entry in stanzas:
            if entry.get("name") == self.stanza:
                return dict(entry)
        return {}


def as_service_user() -> list[str]:
    if not running_as_root():
        return []
    return [shutil.which("runuser") or "runuser", "-u", SERVICE_USER, "--"]


def _give_to_service_user(path: Path) -> None:
    if running_as_root():
        entry = pwd.getpwnam(SERVICE_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def cipher_pass(project: Path, environ: dict[str, str]) -> str:
    """The repository's cipher pass: $SCHEDGEN_PGBACKREST_CIPHER_PASS, else the project's secret (added to
    .schedgen/secrets.env the first time, as BACKUP_HMAC_KEY is)."""
    from schedgen_ops.config.secrets import SECRET_GENERATORS, parse_env_file, secrets_path, write_env_file

    if environ.get(CIPHER_ENV):
        return environ[CIPHER_ENV]
    path = secrets_path(project)
    values = parse_env_file(path.read_text(encoding="utf-8"))
    if not values.get(CIPHER_NAME):
        values[CIPHER_NAME] = SECRET_GENERATORS[CIPHER_NAME]()
        write_env_file(path, values)
    return values[CIPHER_NAME]


def s3_options(config: Config, secrets: dict[str, str], environ: dict[str, str]) -> dict[str, str]:
    """repo1-s3-* values of an s3 repository: the project's MinIO (or SCHEDGEN_S3_* settings)."""
    if config.backup.pitr.repo != "s3":
        return {}
    from urllib.parse import urlsplit

    url = environ.get("SCHEDGEN_S3_ENDPOINT_URL") or f"http://127.0.0.1:{config.ports.minio}"
    parts = urlsplit(url)
    if parts.scheme != "https":
        # pgBackRest 2.45 (Debian 12) speaks S3 only over TLS: against plain HTTP it retries for about three
        # minutes, then fails with "TLS error ... wrong version number". Say so before it starts.
        raise SchedgenError(
            f"backup.pitr.repo=s3 needs an https S3 endpoint; {url} is {parts.scheme or 'not a URL'}",
            code="pitr_s3_needs_https",
            hint="serve MinIO over TLS and set SCHEDGEN_S3_ENDPOINT_URL=https://HOST:PORT (a private CA's "
            "certificate in SCHEDGEN_S3_CA_FILE), or keep the repository on disk: backup.pitr.repo=local",
            exit_code=2,
        )
    ca_file = environ.get("SCHEDGEN_S3_CA_FILE", "")
    if ca_file and not Path(ca_file).is_file():
        raise SchedgenError(
            f"SCHEDGEN_S3_CA_FILE={ca_file} is not a file",
            code="pitr_s3_ca_missing",
            hint="point it at the PEM certificate of the CA that signed the S3 endpoint's certificate",
            exit_code=2,
        )
    return {
        "endpoint": parts.hostname or "127.0.0.1",
        "port": str(parts.port or 443),
        "region": environ.get("SCHEDGEN_S3_REGION") or "us-east-1",
        "key": environ.get("SCHEDGEN_S3_ACCESS_KEY") or secrets.get("S3_ACCESS_KEY", ""),
        "key_secret": environ.get("SCHEDGEN_S3_SECRET_KEY") or secrets.get("S3_SECRET_KEY", ""),
        "verify_tls": "y",
        "ca_file": ca_file,
    }
