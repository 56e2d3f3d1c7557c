"""Who connects to what: the database roles and Redis ACL users of a deployment, least privilege first.

One place names every role and user and says what it may do, so the rendered configuration of every
runtime (compose, Kubernetes, local), the readiness checklist and the tests agree.

Postgres (``postgres.user`` is the deployment's database owner, ``U`` below):
    postgres      superuser; only the bootstrap (roles.sql) and the operator use it
    U             owns the database, CREATEDB, member of U_app: pg_dump, pg_restore, the scratch database
                  of `backup verify --deep` and the swap of a restore (never superuser, never CREATEROLE)
    U_app         the service: LOGIN only, owns the schema U_app ("$user" on its search_path) and
                  nothing else (no database, no CREATE on public, no role or server-program rights)
    U_exporter    postgres_exporter: member of pg_monitor, no table access
Redis (ACL users; no user runs on a bare ``requirepass``):
    app           the service: every command but @dangerous (no FLUSHALL, CONFIG, KEYS, DEBUG, SHUTDOWN,
                  replication or ACL), INFO added back for RQ and health
    exporter      redis_exporter: INFO, CONFIG GET, SLOWLOG, LATENCY and key-size reads only
    default       backups and restores: reads, SYNC for ``redis-cli --rdb``, FLUSHALL + RESTORE for a
                  restore. It is the user a bare password (REDISCLI_AUTH inside the container) logs in as
    admin         everything, for the operator's hands only (CONFIG SET during an incident)
Passwords reach Redis as SHA-256 hashes (``#<hex>``): the rendered config never holds a password.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from schedgen_ops.config.model import Config

PG_SUPERUSER = "postgres"
PG_NAME_MAX = 63  # NAMEDATALEN - 1: longer identifiers are silently truncated
REDIS_APP = "app"
REDIS_EXPORTER = "exporter"
REDIS_BACKUP = "default"
REDIS_ADMIN = "admin"

#: ACL rules of each Redis user (without its password). Order matters: rules apply left to right.
REDIS_RULES: dict[str, str] = {
    REDIS_APP: "~* &* +@all -@dangerous +info",
    REDIS_EXPORTER: (
        "~* resetchannels -@all +ping +hello +select +info +config|get +client|list +client|info "
        "+slowlog|get +slowlog|len +latency|latest +latency|histogram +cluster|info +memory|stats "
        "+scan +type +strlen +llen +scard +zcard +hlen +xlen +pfcount +xinfo|stream"
    ),
    REDIS_BACKUP: (
        "~* &* -@all +@read +ping +hello +select +echo +client|setname +client|getname +client|info "
        "+info +sync +psync +replconf +dump +restore +flushall"
    ),
    REDIS_ADMIN: "~* &* +@all",
}
#: What Sentinel and the operator need on the user replicas and sentinels authenticate as (Redis docs).
SENTINEL_RULES = (
    "+multi +exec +slaveof +replicaof +subscribe +publish +role +config|rewrite +client|kill +script|kill"
)
#: Secret holding each Redis user's password.
REDIS_PASSWORD_SECRET: dict[str, str] = {
    REDIS_APP: "REDIS_PASSWORD",
    REDIS_EXPORTER: "REDIS_EXPORTER_PASSWORD",
    REDIS_BACKUP: "REDIS_BACKUP_PASSWORD",
    REDIS_ADMIN: "REDIS_ADMIN_PASSWORD",
}
#: Commands the app's Redis user must never run (the least-privilege tests and the checklist).
REDIS_APP_DENIED = ("flushall", "flushdb", "config", "shutdown", "debug", "acl", "keys", "replicaof")
DANGEROUS = frozenset(REDIS_APP_DENIED)  # all of them are in Redis's @dangerous category


@dataclass(frozen=True)
class PgRoles:
    """The Postgres role names of one deployment."""

    owner: str
    database: str

    @property
    def superuser(self) -> str:
        return PG_SUPERUSER

    @property
    def app(self) -> str:
        return f"{self.owner}_app"

    @property
    def exporter(self) -> str:
        return f"{self.owner}_exporter"

    @property
    def schema(self) -> str:
        """The app's schema: named after the app role, so "$user" on the default search_path finds it."""
        return self.app

    @classmethod
    def of(cls, config: Config) -> PgRoles:
        """The roles of a configuration; refuses a ``postgres.user`` whose derived names would be cut."""
        roles = cls(owner=config.postgres.user, database=config.postgres.database)
        if len(roles.exporter.encode()) > PG_NAME_MAX:
            from schedgen_ops.errors import SchedgenError

            raise SchedgenError(
                f"postgres.user {roles.owner!r} is too long: the role {roles.exporter!r} exceeds Postgres's "
                f"{PG_NAME_MAX}-byte names",
                code="bad_config",
                hint=f"use a postgres.user of at most {PG_NAME_MAX - len('_exporter')} characters",
            )
        return roles


#: Secret holding each Postgres role's password (keys of `PgRoles` properties).
PG_PASSWORD_SECRET: dict[str, str] = {
    "superuser": "POSTGRES_SUPERUSER_PASSWORD",
    "owner": "POSTGRES_PASSWORD",
    "app": "POSTGRES_APP_PASSWORD",
    "exporter": "POSTGRES_EXPORTER_PASSWORD",
}


def redis_password_hash(password: str) -> str:
    """Redis's ``#<hash>`` form: the SHA-256 of the password, in hex."""
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def redis_user_rules(user: str, *, sentinel: bool = False) -> str:
    rules = REDIS_RULES[user]
    if sentinel and user == REDIS_BACKUP:
        rules += " " + SENTINEL_RULES
    return rules


def redis_acl_lines(secrets: dict[str, str], *, sentinel: bool = False) -> list[str]:
    """``user NAME on #HASH RULES`` lines for redis.conf, one per user, in a stable order."""
    return [
        f"user {user} reset on {redis_password_hash(secrets[REDIS_PASSWORD_SECRET[user]])} "
        f"{redis_user_rules(user, sentinel=sentinel)}"
        for user in (REDIS_BACKUP, REDIS_APP, REDIS_EXPORTER, REDIS_ADMIN)
    ]


def parse_acl_line(line: str) -> tuple[str, list[str]] | None:
    """(user, rules) of a redis.conf ``user`` line, else None."""
    parts = line.split()
    if len(parts) < 2 or parts[0].lower() != "user":
        return None
    return parts[1], parts[2:]


def acl_allows(rules: list[str], command: str) -> bool:
    """Whether ACL ``rules`` let a user run ``command`` (a best-effort reading, for static checks).

    Understands +@all/-@all, +cmd/-cmd, +cmd|sub and the one category our rules subtract (@dangerous,
    which holds every command in `REDIS_APP_DENIED`); the live checks ask the server itself.
    """
    allowed = False
    command = command.lower()
    for rule in rules:
        rule = rule.lower()
        if rule in ("+@all", "allcommands"):
            allowed = True
        elif rule in ("-@all", "nocommands", "reset") or (rule == "-@dangerous" and command in DANGEROUS):
            allowed = False
        elif rule[0] in "+-" and rule[1:] == command:  # +cmd|sub grants one subcommand, not the command
            allowed = rule[0] == "+"
    return allowed
