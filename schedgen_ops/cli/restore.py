"""`schedgen restore ID`: verify, safety-backup, stop writers, restore, check, restart, report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from schedgen_ops.cli.backup import (
    AllowUnsignedOpt,
    DbOpt,
    DirOpt,
    JsonOpt,
    RedisOpt,
    StorageOpt,
    TargetOpt,
    context,
    emit,
    signing_key,
)
from schedgen_ops.cli.backup_request import set_request
from schedgen_ops.cli.restore_view import health_after, outcome, say, took
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.context import BackupContext
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.restore import RestoreRequest, restore_backup
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.ops.health.after_restore import health_after_restore

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def restore(
    backup_id: str | None = typer.Argument(None, help="Backup id from `schedgen backup list`."),
    to: str | None = typer.Option(
        None,
        "--to",
        metavar="TIME|latest",
        help="Point-in-time recovery instead of a set: an ISO 8601 time with a zone, or 'latest' "
        "(every archived WAL segment). Needs backup.pitr on.",
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation (scripts, CI)."),
    directory: Path | None = DirOpt,
    target: str | None = TargetOpt,
    database_url: str | None = DbOpt,
    redis_url: str | None = RedisOpt,
    storage_url: str | None = StorageOpt,
    with_redis: bool = typer.Option(False, "--redis", help="Also replace Redis' keys with the snapshot's."),
    with_uploads: bool = typer.Option(False, "--uploads", help="Also put the archived upload objects back."),
    swap: bool = typer.Option(
        False,
        "--swap",
        help="Require the swap (restore into a new database, rename it in; the old one is kept, renamed), "
        "which is the default whenever the role may create and rename databases.",
    ),
    force: bool = typer.Option(
        False, "--force", help="Restore a set taken from another deployment or database."
    ),
    allow_unsigned: bool = AllowUnsignedOpt,
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel pg_restore jobs."),
    deep: bool = typer.Option(False, "--deep-verify", help="Verify with a scratch restore first."),
    no_safety_backup: bool = typer.Option(
        False, "--no-safety-backup", help="Skip the backup of the current state (only when it is known lost)."
    ),
    supervisor_sock: Path | None = typer.Option(
        None,
        "--supervisor-sock",
        help="Control socket of the local runtime's supervisord (default: the project's, when it runs).",
    ),
    no_health: bool = typer.Option(False, "--no-health", help="Skip `schedgen health` after the restore."),
    as_json: bool = JsonOpt,
) -> None:
    """Restore a verified backup set (or, with --to, a point in time) over the current data, then report."""
    if (backup_id is None) == (to is None):
        raise SchedgenError(
            "name a backup set or pass --to TIME|latest (exactly one)",
            code="usage",
            hint="`schedgen backup list` shows both the sets and the recoverable window",
            exit_code=2,
        )
    ctx_ = context(directory, target, database_url, redis_url, storage_url, supervisor_sock)
    if to is not None:
        _restore_to(
            ctx_, to, yes=yes, no_safety_backup=no_safety_backup, no_health=no_health, as_json=as_json
        )
        return
    assert backup_id is not None
    db_target = ctx_.target()
    if not yes and not typer.confirm(
        f"Replace the data of {ctx_.target_name} ({ctx_.database_url.rsplit('/', 1)[-1] or 'database'}) "
        f"with backup {backup_id}? Writers will be stopped meanwhile",
        default=False,
    ):
        raise SchedgenError("restore cancelled", code="cancelled", hint="pass --yes to skip the question")
    if with_redis and not ctx_.redis_url:
        raise SchedgenError("--redis needs a Redis URL", code="usage", hint="pass --redis-url", exit_code=2)
    if with_uploads and not ctx_.storage_url and db_target.uploads_extract() is None:
        raise SchedgenError(
            "--uploads needs a storage URL", code="usage", hint="pass --storage-url", exit_code=2
        )
    key = signing_key(ctx_)
    request = RestoreRequest(
        target=db_target,
        directory=ctx_.directory,
        backup_id=backup_id,
        key=key,
        writers=ctx_.writers(),
        mode="swap" if swap else "auto",
        jobs=jobs,
        redis_url=ctx_.redis_url if with_redis else None,
        storage_url=ctx_.storage_url if with_uploads else None,
        with_uploads=with_uploads,
        s3=ctx_.s3,
        safety_backup=not no_safety_backup,
        safety_request=set_request(ctx_, db_target, key, with_uploads=True),
        deep_verify=deep,
        allow_unsigned=allow_unsigned,
        force=force,
        project_name=ctx_.project_name,
    )
    report = restore_backup(request, Reporter(quiet=as_json))
    if not no_health:
        report.health = _health_after(ctx_)

    if report.ledger_warning:
        _err.print(f"warning: {report.ledger_warning}", markup=False)

    def human() -> None:
        say(
            f"restored backup {report.backup_id} into {report.database} "
            f"({report.mode}: {report.mode_reason})",
            *(f"  --force: the set is of another {difference}" for difference in report.forced),
            *outcome(report),
        )
        if report.previous_database:
            say(f"  previous database kept as {report.previous_database}")
        if report.redis_keys is not None:
            say(f"  redis: {report.redis_keys} keys")
        if report.upload_objects is not None:
            say(f"  uploads: {report.upload_objects} objects")
        say(
            f"  writers stopped: {', '.join(report.stopped) or 'none under our control'}",
            f"  writers restarted: {', '.join(report.restarted) or 'none'}",
            *(
                f"  check {check['name']}: {'ok' if check['ok'] else 'FAILED'} {check['detail']}"
                for check in report.checks
            ),
            took(report, "postgres"),
            *health_after(report.health, problems=True),
        )

    emit(as_json, report.to_json(), human)


def _health_after(ctx_: BackupContext) -> dict[str, Any]:
    """`schedgen health` of the restored stack, with the endpoints the restore itself used."""
    return health_after_restore(
        ctx_.target_name,
        ctx_.project,
        database_url=ctx_.database_url,
        redis_url=ctx_.redis_url,
        storage_url=ctx_.storage_url,
        backup_dir=ctx_.directory,
        config=ctx_.config,
    )


def register(app: typer.Typer) -> None:
    app.command("restore")(restore)


def _restore_to(
    ctx_: Any, to: str, *, yes: bool, no_safety_backup: bool, no_health: bool, as_json: bool
) -> None:
    """`restore --to`: pgBackRest into a scratch directory, checked, then swapped in with writers stopped."""
    from schedgen_ops.cli import pitr as cli_pitr
    from schedgen_ops.ops.backup.pitr_restore import PitrRestoreRequest, local_postgres, restore_to
    from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget

    if ctx_.target_name == "compose":  # the postgres volume, through docker compose (cli/pitr.py)
        document = cli_pitr.restore_compose(
            ctx_, to, yes=yes, no_safety_backup=no_safety_backup, as_json=as_json
        )
        if not no_health:
            document["health"] = _health_after(ctx_)
        if as_json:
            emit(True, document, lambda: None)
        elif document.get("health"):
            say(*health_after(document["health"]))
        return
    recovery = RecoveryTarget.parse(to)
    site = cli_pitr.site(ctx_, required=True)
    assert site is not None
    if not yes and not typer.confirm(
        f"Replace the local Postgres data with its state at {recovery.describe()}? Writers will be stopped "
        "meanwhile",
        default=False,
    ):
        raise SchedgenError("restore cancelled", code="cancelled", hint="pass --yes to skip the question")
    key = signing_key(ctx_)
    db_target = LocalTarget(ctx_.database_url, None) if ctx_.database_url else None
    if db_target is None and not no_safety_backup:
        raise SchedgenError(
            "no database URL for the safety backup",
            code="backup_no_database",
            hint="is the local runtime up? pass --database-url, or --no-safety-backup when the data is lost",
        )
    base = RestoreRequest(
        target=db_target or LocalTarget("postgresql://127.0.0.1/none", None),
        directory=ctx_.directory,
        backup_id=f"pitr:{recovery.describe()}",
        key=key,
        writers=ctx_.writers(),
    )
    safety = None if no_safety_backup or db_target is None else cli_pitr.safety_request(ctx_, db_target, key)
    request = PitrRestoreRequest(
        site=site,
        target=recovery,
        base=base,
        postgres=local_postgres(ctx_.supervisor_sock),
        safety_request=safety,
        database=ctx_.database_name,
    )
    report = restore_to(request, Reporter(quiet=as_json))
    if not no_health and request.postgres is not None:
        report.health = _health_after(ctx_)

    def human() -> None:
        say(f"restored the local Postgres to {report.target} ({report.mode_reason})", *outcome(report))
        if report.previous_database:
            say(f"  previous data directory kept as {report.previous_database}")
        if request.postgres is None:
            say("  the local runtime is down: start it with `schedgen up`")
        say(
            f"  writers restarted: {', '.join(report.restarted) or 'none'}",
            f"  archiving after the restore: {report.archive_check}",
            took(report, "recovery"),
            *health_after(report.health),
        )

    emit(as_json, report.to_json(), human)
