"""`schedgen backup`: create, verify, list, prune, push and pull backup sets (library: ops/backup)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from schedgen_ops.cli import pitr as cli_pitr
from schedgen_ops.cli.backup_request import set_request
from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import ledger
from schedgen_ops.ops.backup.catalog import list_backups
from schedgen_ops.ops.backup.context import BackupContext, resolve_context
from schedgen_ops.ops.backup.create import create_backup
from schedgen_ops.ops.backup.progress import Reporter, human_bytes
from schedgen_ops.ops.backup.prune import prune_backups
from schedgen_ops.ops.backup.remote import pull_backup, push_backup
from schedgen_ops.ops.backup.retention import Policy
from schedgen_ops.ops.backup.signing import SigningKey
from schedgen_ops.ops.backup.verify import verify_backup
from schedgen_ops.ops.backup.webhook import WEBHOOK_ENV, failure_payload, post_failure

backup_app = typer.Typer(
    help="Verified backups: create (no subcommand), verify, list, prune, push, pull.",
    invoke_without_command=True,
    no_args_is_help=False,
)
_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

DirOpt = typer.Option(None, "--dir", "-d", help="Backup directory (default: backup.dir of the config).")
TargetOpt = typer.Option(
    None,
    "--target",
    "-t",
    help="Runtime holding the data: local, compose, kubernetes (default: the live release's target).",
)
DbOpt = typer.Option(None, "--database-url", help="Postgres URL (default: SCHEDGEN_DATABASE_URL / config).")
RedisOpt = typer.Option(None, "--redis-url", help="Redis URL (default: SCHEDGEN_REDIS_URL / config).")
StorageOpt = typer.Option(
    None, "--storage-url", help="Upload storage (default: SCHEDGEN_STORAGE_URL / config)."
)
JsonOpt = typer.Option(False, "--json", help="Print a JSON document instead of the human view.")
WebhookOpt = typer.Option(
    None, "--webhook", help=f"POST a JSON notice here when the command fails (default: ${WEBHOOK_ENV})."
)
AllowUnsignedOpt = typer.Option(
    False,
    "--allow-unsigned",
    help="Accept a set whose manifest this project's key did not sign (made before signing, or by another "
    "project); its files are still checked, and it is then signed with this project's key.",
)


def context(
    directory: Path | None,
    target: str | None = None,
    database_url: str | None = None,
    redis_url: str | None = None,
    storage_url: str | None = None,
    supervisor_sock: Path | None = None,
) -> BackupContext:
    from schedgen_ops.runtime.locate import default_target

    return resolve_context(
        OPTIONS.project,
        target=default_target(OPTIONS.project, target),
        directory=directory,
        database_url=database_url,
        redis_url=redis_url,
        storage_url=storage_url,
        supervisor_sock=supervisor_sock,
    )


@contextmanager
def notify_on_failure(command: str, webhook: str | None, directory: Path | None) -> Iterator[None]:
    """Post to the failure webhook when the block raises an expected failure, then re-raise."""
    from schedgen_ops.config.secrets import backup_webhook_url

    # The URL is a secret (.schedgen/secrets.env BACKUP_WEBHOOK_URL): never printed in full.
    url = webhook or os.environ.get(WEBHOOK_ENV, "") or backup_webhook_url(OPTIONS.project)
    try:
        yield
    except SchedgenError as exc:
        if url:
            problem = post_failure(
                url, failure_payload(command, exc.one_line(), code=exc.code, directory=str(directory or ""))
            )
            if problem:
                _err.print(f"warning: {problem}", markup=False)
        raise


def signing_key(ctx_: BackupContext) -> SigningKey:
    """The project's manifest key; says so on stderr when it was just generated."""
    key, note = ctx_.signing_key()
    if note:
        _err.print(f"note: {note}", markup=False)
    return key


def emit(as_json: bool, document: Any, human: Callable[[], None]) -> None:
    if as_json:
        typer.echo(json.dumps(document, indent=2, sort_keys=True))
    else:
        human()


@backup_app.callback()
def backup(
    ctx: typer.Context,
    directory: Path | None = DirOpt,
    target: str | None = TargetOpt,
    database_url: str | None = DbOpt,
    redis_url: str | None = RedisOpt,
    storage_url: str | None = StorageOpt,
    include_secrets: bool = typer.Option(
        False,
        "--include-secrets",
        help="Also archive secrets.env and role passwords (handle the set as a secret).",
    ),
    as_json: bool = JsonOpt,
    webhook: str | None = WebhookOpt,
) -> None:
    """Write one backup set: Postgres (dump + globals), Redis, pending uploads, config, manifest."""
    if ctx.invoked_subcommand is not None:
        return
    with notify_on_failure("backup", webhook, directory):
        ctx_ = context(directory, target, database_url, redis_url, storage_url)
        request = set_request(
            ctx_,
            ctx_.target(),
            signing_key(ctx_),
            with_uploads=True,
            include_secrets=include_secrets,
            reason=os.environ.get("SCHEDGEN_BACKUP_REASON", "manual"),
        )
        manifest = create_backup(request, Reporter(quiet=as_json))
        pitr_site = cli_pitr.site(ctx_)
        pitr_backup = cli_pitr.scheduled(pitr_site) if pitr_site is not None else None
    path = ctx_.directory / manifest.id
    _warn(ledger.record(request.target, [manifest]))

    def human() -> None:
        size = sum(f.size for f in manifest.files)
        rows = manifest.postgres.rows_total if manifest.postgres else 0
        _out.print(
            f"backup {manifest.id} complete: {human_bytes(size)}, {rows} rows, {len(manifest.files)} files "
            f"in {manifest.duration_s:.1f}s -> {path}",
            markup=False,
        )
        if pitr_backup is not None:
            b = pitr_backup["backup"]
            _out.print(
                f"pgBackRest {b['type']} backup {b['label']} (stanza {pitr_backup['stanza']})", markup=False
            )
        _out.print("next: schedgen backup verify " + manifest.id, markup=False)

    emit(as_json, {**manifest.to_json(), "path": str(path), "pitr": pitr_backup}, human)


@backup_app.command("pitr-enable")
def pitr_enable(
    directory: Path | None = DirOpt, as_json: bool = JsonOpt, webhook: str | None = WebhookOpt
) -> None:
    """PITR: write pgbackrest.conf, create the stanza, check archiving, take the first full backup."""
    with notify_on_failure("backup pitr-enable", webhook, directory):
        cli_pitr.enable_command(context(directory), as_json)  # the live release's target


@backup_app.command("verify")
def verify(
    backup_id: str | None = typer.Argument(None, help="Backup id (default: the newest complete backup)."),
    deep: bool = typer.Option(
        False, "--deep", help="Also restore into a scratch database and compare row counts."
    ),
    directory: Path | None = DirOpt,
    target: str | None = TargetOpt,
    database_url: str | None = DbOpt,
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="Parallel pg_restore jobs for --deep."),
    allow_unsigned: bool = AllowUnsignedOpt,
    as_json: bool = JsonOpt,
    webhook: str | None = WebhookOpt,
) -> None:
    """Check a set (signature, checksums, archive TOC, full read; --deep: scratch restore), record it."""
    with notify_on_failure("backup verify", webhook, directory):
        ctx_ = context(directory, target, database_url)
        pitr_site = cli_pitr.site(ctx_)
        pitr_result = (
            cli_pitr.verify(pitr_site, deep=deep, database=ctx_.database_name)
            if pitr_site is not None and backup_id is None
            else None
        )
        db_target = ctx_.target() if deep else None
        entry, result = verify_backup(
            ctx_.directory,
            backup_id,
            key=signing_key(ctx_),
            allow_unsigned=allow_unsigned,
            deep=deep,
            target=db_target,
            jobs=jobs,
            reporter=Reporter(quiet=as_json),
        )

        def human() -> None:
            table = Table(title=f"backup {entry.id}: {result.level} verification {result.status.upper()}")
            table.add_column("check")
            table.add_column("ok")
            table.add_column("detail")
            for check in result.checks:
                table.add_row(check.name, "yes" if check.ok else "NO", check.detail)
            _out.print(table)

        if entry.manifest is not None:
            _warn(_record_verified(ctx_, db_target, entry.manifest))
        if pitr_result is not None and not as_json:
            drill = pitr_result.get("drill")
            _out.print(
                f"pgbackrest verify: {pitr_result['repository']}"
                + (
                    f"; drill: {drill['detail']} ({drill['restore_s'] + drill['recover_s']:.1f}s)"
                    if drill
                    else ""
                ),
                markup=False,
            )
        document = {"id": entry.id, "path": str(entry.path), "verification": result.model_dump()}
        emit(as_json, {**document, "pitr": pitr_result}, human)
        if result.status != "passed":
            failed = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.ok)
            raise SchedgenError(
                f"backup {entry.id} failed verification: {failed}", code="backup_failed_verification"
            )


@backup_app.command("list")
def list_cmd(directory: Path | None = DirOpt, as_json: bool = JsonOpt) -> None:
    """Backup sets, oldest first, with state, size and last verification."""
    ctx_ = context(directory)
    entries = list_backups(ctx_.directory)
    pitr_site = cli_pitr.site(ctx_)
    window = cli_pitr.window_json(pitr_site) if pitr_site is not None else None

    def human() -> None:
        if window is not None:
            cli_pitr.print_window(window)
        if not entries:
            _out.print(f"no backups in {ctx_.directory}", markup=False)
            return
        table = Table(title=f"backups in {ctx_.directory}")
        for column in ("id", "state", "reason", "size", "rows", "verified"):
            table.add_column(column)
        for e in entries:
            s = e.summary()
            v = s["verification"]
            verified = f"{v['status']} ({v['level']}, {v['verified_at']})" if isinstance(v, dict) else "never"
            size = s["size_bytes"]
            table.add_row(
                e.id,
                e.state if not e.problem else f"{e.state}: {e.problem}"[:80],
                str(s["reason"] or ""),
                human_bytes(float(size)) if isinstance(size, int) else "",
                str(s["rows_total"] if s["rows_total"] is not None else ""),
                verified,
            )
        _out.print(table)

    document = {"directory": str(ctx_.directory), "backups": [e.summary() for e in entries]}
    emit(as_json, {**document, "pitr": window}, human)


@backup_app.command("prune")
def prune(
    keep_daily: int | None = typer.Option(
        None, "--keep-daily", min=0, help="Days kept (default: profile, 7)."
    ),
    keep_weekly: int | None = typer.Option(
        None, "--keep-weekly", min=0, help="Weeks kept (default: profile, 4)."
    ),
    keep_monthly: int | None = typer.Option(
        None, "--keep-monthly", min=0, help="Months kept (default: profile, 12)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be removed; remove nothing."),
    directory: Path | None = DirOpt,
    as_json: bool = JsonOpt,
    webhook: str | None = WebhookOpt,
) -> None:
    """Apply GFS retention; the newest verified backup is never removed."""
    with notify_on_failure("backup prune", webhook, directory):
        ctx_ = context(directory)
        base = ctx_.policy
        policy = Policy(
            keep_daily=base.keep_daily if keep_daily is None else keep_daily,
            keep_weekly=base.keep_weekly if keep_weekly is None else keep_weekly,
            keep_monthly=base.keep_monthly if keep_monthly is None else keep_monthly,
        )
        result = prune_backups(ctx_.directory, policy, dry_run=dry_run)

    def human() -> None:
        verb = "would remove" if dry_run else "removed"
        for backup_id, reasons in sorted(result.selection.keep.items()):
            _out.print(f"keep   {backup_id}  ({', '.join(reasons)})", markup=False)
        for name in [*result.selection.prune, *result.debris]:
            _out.print(f"{verb:6} {name}", markup=False)
        _out.print(
            f"policy daily={policy.keep_daily} weekly={policy.keep_weekly} monthly={policy.keep_monthly}: "
            f"{len(result.selection.keep)} kept, {len(result.selection.prune) + len(result.debris)} {verb}",
            markup=False,
        )

    emit(as_json, {**result.to_json(), "policy": policy.__dict__}, human)


@backup_app.command("push")
def push(
    backup_id: str = typer.Argument(..., help="Backup id ('latest' for the newest complete one)."),
    url: str = typer.Argument(..., help="s3://bucket/prefix (MinIO: set SCHEDGEN_S3_ENDPOINT_URL)."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO)."),
    directory: Path | None = DirOpt,
    as_json: bool = JsonOpt,
    webhook: str | None = WebhookOpt,
) -> None:
    """Copy a backup set off-site (files first, manifest last)."""
    with notify_on_failure("backup push", webhook, directory):
        ctx_ = context(directory)
        s3 = _with_endpoint(ctx_, endpoint_url)
        manifest = push_backup(
            ctx_.directory,
            None if backup_id == "latest" else backup_id,
            url,
            s3,
            Reporter(quiet=as_json),
            key=signing_key(ctx_),
        )
    emit(
        as_json,
        {"id": manifest.id, "url": f"{url.rstrip('/')}/{manifest.id}/", "files": len(manifest.files) + 1},
        lambda: _out.print(f"pushed {manifest.id} to {url.rstrip('/')}/{manifest.id}/", markup=False),
    )


@backup_app.command("pull")
def pull(
    backup_id: str = typer.Argument(..., help="Backup id to fetch."),
    url: str = typer.Argument(..., help="s3://bucket/prefix it was pushed to."),
    endpoint_url: str | None = typer.Option(None, "--endpoint-url", help="S3 endpoint (MinIO)."),
    directory: Path | None = DirOpt,
    allow_unsigned: bool = AllowUnsignedOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fetch an off-site copy into the backup directory (signature and checksums checked first)."""
    ctx_ = context(directory)
    s3 = _with_endpoint(ctx_, endpoint_url)
    manifest = pull_backup(
        ctx_.directory,
        backup_id,
        url,
        s3,
        Reporter(quiet=as_json),
        key=signing_key(ctx_),
        allow_unsigned=allow_unsigned,
    )
    emit(
        as_json,
        {"id": manifest.id, "path": str(ctx_.directory / manifest.id)},
        lambda: _out.print(
            f"pulled {manifest.id} into {ctx_.directory / manifest.id}; "
            f"next: schedgen backup verify {manifest.id}",
            markup=False,
        ),
    )


def _warn(problem: str | None) -> None:
    if problem:
        _err.print(f"warning: {problem}", markup=False)


def _record_verified(ctx_: BackupContext, target: Any, manifest: Any) -> str | None:
    """Record the verification in the ledger (a standard verify has no target yet: build one)."""
    try:
        return ledger.record(target or ctx_.target(), [manifest])
    except SchedgenError as exc:
        return f"verification not recorded in backup_ledger: {exc.one_line()}"


def _with_endpoint(ctx_: BackupContext, endpoint_url: str | None) -> Any:
    from dataclasses import replace

    return replace(ctx_.s3, endpoint_url=endpoint_url) if endpoint_url else ctx_.s3


def register(app: typer.Typer) -> None:
    app.add_typer(backup_app, name="backup")
