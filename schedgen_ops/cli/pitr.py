"""The PITR parts of `schedgen backup` and `schedgen restore` (library: ops/backup/pitr*.py)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.context import BackupContext
from schedgen_ops.ops.backup.pgbackrest import PitrSite

if TYPE_CHECKING:
    from schedgen_ops.ops.backup.create import BackupRequest
    from schedgen_ops.ops.backup.signing import SigningKey
    from schedgen_ops.ops.backup.targets import Target
    from schedgen_ops.runtime.operations import Ops

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def site(ctx_: BackupContext, *, required: bool = False) -> PitrSite | None:
    """The project's pgBackRest site when backup.pitr is on for the local or compose target (None
    otherwise: Kubernetes archives through CloudNativePG)."""
    config = ctx_.config
    enabled = bool(config is not None and config.backup.pitr.enabled)
    if enabled and config is not None and ctx_.target_name == "local":
        return PitrSite.for_project(ctx_.project, config)
    if enabled and config is not None and ctx_.target_name == "compose":
        from schedgen_ops.ops.backup.pitr_compose import ComposePitrSite
        from schedgen_ops.runtime.runner import Runner

        runner = Runner(echo=lambda line: _err.print(line, markup=False))
        return ComposePitrSite.for_compose(config, ctx_.compose_project(config.name), runner)
    if required:
        why = "is off for this project" if not enabled else f"is managed by the {ctx_.target_name} runtime"
        raise SchedgenError(
            f"point-in-time recovery {why}",
            code="pitr_unavailable",
            hint="local or compose: --set backup.pitr.enabled=true, deploy, `schedgen backup pitr-enable`; "
            "kubernetes: CloudNativePG's backups (docs/BACKUP.md)",
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
    from schedgen_ops.ops.backup import pitr, pitr_compose_drill, pitr_drill
    from schedgen_ops.ops.backup.pitr_compose import ComposePitrSite

    result: dict[str, Any] = {"stanza": s.stanza, "repository": pitr.verify_repository(s) or "ok"}
    if deep:
        # compose: in a one-off container of the postgres service, beside the live server
        outcome = (
            pitr_compose_drill.drill(s, database)
            if isinstance(s, ComposePitrSite)
            else pitr_drill.drill(s, database)
        )
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


def restore_compose(
    ctx_: BackupContext, to: str, *, yes: bool, no_safety_backup: bool, as_json: bool
) -> dict[str, Any]:
    """`restore --to` on compose (ops/backup/pitr_compose_restore.py); returns the report's JSON."""
    from schedgen_ops.ops.backup.pitr_compose import ComposePitrSite
    from schedgen_ops.ops.backup.pitr_compose_restore import ComposeRestoreRequest, restore_to_compose
    from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget
    from schedgen_ops.ops.backup.progress import Reporter
    from schedgen_ops.ops.backup.restore import RestoreRequest
    from schedgen_ops.ops.backup.signing import load_key

    recovery = RecoveryTarget.parse(to)
    s = site(ctx_, required=True)
    assert isinstance(s, ComposePitrSite)
    if not yes and not typer.confirm(
        f"Replace the compose postgres data with its state at {recovery.describe()}? Writers will be "
        "stopped meanwhile",
        default=False,
    ):
        raise SchedgenError("restore cancelled", code="cancelled", hint="pass --yes to skip the question")
    key, _ = load_key(ctx_.project)
    db_target = ctx_.target()
    base = RestoreRequest(
        target=db_target,
        directory=ctx_.directory,
        backup_id=f"pitr:{recovery.describe()}",
        key=key,
        writers=ctx_.writers(),
    )
    request = ComposeRestoreRequest(
        site=s,
        target=recovery,
        base=base,
        safety_request=None if no_safety_backup else safety_request(ctx_, db_target, key),
        database=(ctx_.config.postgres.database if ctx_.config else "") or "schedgen",
    )
    report = restore_to_compose(request, Reporter(quiet=as_json))
    if not as_json:
        from schedgen_ops.cli.restore_view import outcome, say, took

        say(
            f"restored the compose postgres to {report.target} ({report.mode_reason})",
            *outcome(report),
            f"  previous data directory: {report.previous_database}",
            f"  writers restarted: {', '.join(report.restarted) or 'none'}",
            f"  archiving after the restore: {report.archive_check}",
            took(report, "restore and recovery"),
        )
    return report.to_json()


def safety_request(ctx_: BackupContext, db_target: Target, key: SigningKey) -> BackupRequest:
    """The pg_dump safety set a point-in-time restore takes of the current state first."""
    from schedgen_ops.cli.backup_request import set_request

    return set_request(ctx_, db_target, key, with_uploads=False)


def enable_after_deploy(
    ops: Ops, target: str, profile: str | None, overrides: list[str]
) -> dict[str, Any] | None:
    """After `up` or a deploy with backup.pitr on (local or compose): the stanza, the archive check and
    (once) the first full backup, so the recovery window opens at once and WAL never piles up
    unarchived. Idempotent: later runs only re-check. None when PITR is off or on Kubernetes
    (CloudNativePG archives there)."""
    from schedgen_ops.runtime import operations

    if target not in ("local", "compose"):
        return None
    config = operations.load(ops, profile, overrides)
    if not config.backup.pitr.enabled:
        return None
    from schedgen_ops.ops.backup import pitr

    ops.echo("pitr: creating the stanza and checking WAL archiving (the first time also a full backup) ...")
    if target == "local":
        site = PitrSite.for_project(ops.project, config)
    else:
        from schedgen_ops.ops.backup.pitr_compose import ComposePitrSite
        from schedgen_ops.runtime.locate import locate

        project = locate(ops.project).compose_project(config.name)
        site = ComposePitrSite.for_compose(config, project, ops.runner)
    report = pitr.ensure_enabled(site)
    return {"stanza": report["stanza"], "first_backup": report["first_backup"]}
