"""The PITR parts of `schedgen backup` and `schedgen restore` (library: ops/backup/pitr*.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import typer
from rich.console import Console

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.context import BackupContext
from schedgen_ops.ops.backup.pgbackrest import PitrSite

_out = Console(highlight=False, soft_wrap=True)


def site(ctx_: BackupContext, *, required: bool = False) -> PitrSite | None:
    """The project's pgBackRest site when backup.pitr is on for the local target (None otherwise)."""
    config = ctx_.config
    enabled = bool(config is not None and config.backup.pitr.enabled)
    if enabled and ctx_.target_name == "local":
        return PitrSite.for_project(ctx_.project, config)
    if required:
        why = "is off for this project" if not enabled else f"is managed by the {ctx_.target_name} runtime"
        raise SchedgenError(
            f"point-in-time recovery {why}",
            code="pitr_unavailable",
            hint="local: --set backup.pitr.enabled=true and deploy; compose uses its postgres image's "
            "pgBackRest (docs/BACKUP.md); kubernetes: CloudNativePG's backups",
        )
    return None


def scheduled(s: PitrSite) -> dict[str, Any]:
    """What `schedgen backup` does with PITR on: ensure the stanza, then the day's full or diff."""
    from schedgen_ops.ops.backup import pitr

    enabled = pitr.ensure_enabled(s)
    if enabled["first_backup"] is not None:
        return {"stanza": s.stanza, "backup": enabled["first_backup"], "first": True}
    kind = pitr.scheduled_type(s, dt.datetime.now(dt.UTC).date())
    return {"stanza": s.stanza, "backup": pitr.backup(s, kind), "first": False}


def window_json(s: PitrSite) -> dict[str, Any]:
    from schedgen_ops.ops.backup import pitr

    try:
        return pitr.window(s, last_archived=pitr.last_archived_time(s)).to_json()
    except SchedgenError as exc:  # never enabled, or the repository is unreachable: still list the sets
        return pitr.Window(stanza=s.stanza, status=f"unavailable: {exc.one_line()}").to_json()


def print_window(window: dict[str, Any]) -> None:
    _out.print(
        f"point-in-time recovery (stanza {window['stanza']}, {window['status']}): recoverable from "
        f"{window['earliest'] or '-'} to {window['latest'] or '-'} "
        f"({window['latest_source'] or 'no backup'})",
        markup=False,
    )
    for b in window["backups"]:
        _out.print(f"  {b['label']}  {b['type']:4}  {b['started']} -> {b['stopped']}", markup=False)


def verify(s: PitrSite, *, deep: bool, database: str) -> dict[str, Any]:
    """`pgbackrest verify`, and with ``deep`` the restore drill; raises when either fails."""
    from schedgen_ops.ops.backup import pitr
    from schedgen_ops.ops.backup.pitr_drill import drill

    result: dict[str, Any] = {"stanza": s.stanza, "repository": pitr.verify_repository(s) or "ok"}
    if deep:
        outcome = drill(s, database)
        result["drill"] = outcome.to_json()
        if not outcome.ok:
            raise SchedgenError(
                f"the point-in-time restore drill failed: {outcome.detail}", code="pitr_drill"
            )
    return result


def enable_command(ctx_: BackupContext, as_json: bool) -> None:
    from schedgen_ops.ops.backup import pitr

    s = site(ctx_, required=True)
    assert s is not None
    report = pitr.ensure_enabled(s)
    if as_json:
        import json

        typer.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    first = report["first_backup"]
    _out.print(
        f"pitr on: stanza {report['stanza']} ({report['conf']}), WAL archiving checked; "
        + (f"first full backup {first['label']}" if first else "the repository already holds backups"),
        markup=False,
    )
