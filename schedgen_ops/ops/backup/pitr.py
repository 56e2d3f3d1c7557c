"""Point-in-time recovery with pgBackRest: enable it, take the scheduled full/differential backups, and
read the recoverable window.

Enabling writes pgbackrest.conf, creates the stanza, checks that Postgres' archive_command reaches the
repository (`pgbackrest check` forces a WAL switch and waits for that segment) and takes the first full
backup, so the window starts at once. Every step is idempotent: the scheduled `schedgen backup` calls
`ensure_enabled` before its backup.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.pgbackrest import PitrSite

BackupType = Literal["full", "diff", "incr"]
#: How long enabling waits for a server that is still replaying WAL (a fresh start or crash recovery).
PRIMARY_WAIT_S = 120.0


@dataclass
class PitrBackup:
    label: str
    type: str
    started: str
    stopped: str
    size: int
    repo_size: int

    @classmethod
    def of(cls, entry: dict[str, Any]) -> PitrBackup:
        stamps = entry.get("timestamp", {})
        info = entry.get("info", {})
        return cls(
            label=str(entry.get("label", "")),
            type=str(entry.get("type", "")),
            started=_iso(stamps.get("start")),
            stopped=_iso(stamps.get("stop")),
            size=int(info.get("size", 0)),
            repo_size=int(info.get("repository", {}).get("size", 0)),
        )


@dataclass
class Window:
    """What `restore --to` can reach: from the oldest backup's end to the last archived WAL."""

    stanza: str
    earliest: str | None = None
    latest: str | None = None
    latest_source: str = ""
    wal_min: str | None = None
    wal_max: str | None = None
    backups: list[PitrBackup] = field(default_factory=list)
    status: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(epoch: Any) -> str:
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).isoformat().replace("+00:00", "Z")


def _require_enabled(site: PitrSite) -> None:
    if not site.config.backup.pitr.enabled:
        raise SchedgenError(
            "point-in-time recovery is off for this project",
            code="pitr_disabled",
            hint="turn it on (backup: {pitr: {enabled: true}} in schedgen.yaml, or --set "
            "backup.pitr.enabled=true), deploy, then run `schedgen backup pitr-enable`",
        )


def wait_primary(
    site: PitrSite, *, timeout_s: float = PRIMARY_WAIT_S, sleep: Callable[[float], None] = time.sleep
) -> None:
    """Until the server accepts connections out of recovery. A server that just started, or restarted
    after a crash, replays WAL first; pgBackRest then finds no primary and fails (exit 56)."""
    deadline = time.monotonic() + timeout_s
    while not site.is_primary():
        if time.monotonic() >= deadline:
            raise SchedgenError(
                f"postgres did not accept connections as a primary within {timeout_s:.0f}s",
                code="pitr_no_primary",
                hint="it may still be replaying WAL or restarting: look at its log "
                "(`schedgen logs postgres`), then run `schedgen backup pitr-enable` once "
                "`schedgen health` shows postgres ok",
            )
        sleep(1.0)


def ensure_enabled(site: PitrSite) -> dict[str, Any]:
    """Config, stanza, archive check and (when the repository has none) the first full backup."""
    _require_enabled(site)
    site.write_conf()
    wait_primary(site)
    site.run("stanza-create", what="creating the pgBackRest stanza", timeout_s=120)
    site.run("check", what="checking that WAL reaches the repository", timeout_s=180)
    first = None
    if not site.info().get("backup"):
        first = backup(site, "full")
    return {"stanza": site.stanza, "conf": site.paths["conf"], "first_backup": first}


def scheduled_type(site: PitrSite, today: dt.date) -> BackupType:
    """Full on ``pitr.full_weekday`` (and when the repository holds none), else differential."""
    has_full = any(b.get("type") == "full" for b in site.info().get("backup", []))
    if not has_full or today.weekday() == site.config.backup.pitr.full_weekday:
        return "full"
    return "diff"


def backup(site: PitrSite, kind: BackupType) -> dict[str, Any]:
    """One pgBackRest backup of ``kind``; returns it as listed by `pgbackrest info`."""
    site.run("backup", f"--type={kind}", what=f"the pgBackRest {kind} backup")
    backups = site.info().get("backup", [])
    if not backups:
        raise SchedgenError("pgbackrest reported success but lists no backup", code="pgbackrest_failed")
    return asdict(PitrBackup.of(backups[-1]))


def window(site: PitrSite, *, last_archived: dt.datetime | None = None) -> Window:
    """The recoverable window; ``last_archived`` (pg_stat_archiver of the live server) sets its end."""
    info = site.info()
    result = Window(stanza=site.stanza, status=str(info.get("status", {}).get("message", "missing")))
    backups = [PitrBackup.of(b) for b in info.get("backup", [])]
    result.backups = backups
    if backups:
        result.earliest = backups[0].stopped
        result.latest, result.latest_source = backups[-1].stopped, "end of the newest backup"
    archives = info.get("archive", [])
    if archives:
        result.wal_min = archives[-1].get("min")
        result.wal_max = archives[-1].get("max")
    if last_archived is not None and backups:
        stamp = last_archived.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
        if stamp > (result.latest or ""):
            result.latest, result.latest_source = stamp, "last archived WAL segment (pg_stat_archiver)"
    return result


def last_archived_time(site: PitrSite) -> dt.datetime | None:
    """pg_stat_archiver.last_archived_time of the live server, None when it does not answer (the site
    reads it: over TCP on the local runtime, through `docker compose exec` on compose)."""
    return site.last_archived()


def verify_repository(site: PitrSite) -> str:
    """`pgbackrest verify`: every backup file and WAL segment checksummed against the repository."""
    return site.run("verify", what="verifying the pgBackRest repository", timeout_s=3600).strip()
