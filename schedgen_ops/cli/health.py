"""`schedgen health`: deep checks with thresholds, a scriptable exit code and a watch mode."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import typer
from rich.console import Console
from rich.live import Live
from typer.core import TyperCommand

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.config.ops_loader import try_load_config
from schedgen_ops.ops.health import COMPONENTS, load_thresholds, resolve_endpoints, run_health
from schedgen_ops.ops.health.model import HealthReport
from schedgen_ops.ops.health.render import report_view
from schedgen_ops.targets import TARGETS

DEFAULT_WATCH_S = 5.0
#: The whole command, interpreter start included, ends within this; output and exit get the margin.
COMMAND_LIMIT_S = 5.0
OUTPUT_MARGIN_S = 1.0
#: Each check gets at least this much even when a slow interpreter start ate the 5 s (overloaded host):
#: reporting every dependency as "not answering" because of our own start-up would be a false alarm.
MIN_CHECK_S = 1.0
#: Start-up never takes this long: a process older than this is running the command in-process.
EMBEDDED_AFTER_S = 15.0


def _process_deadline() -> float:
    """`time.monotonic` value by which checks must be done for the process to end within 5 s of its start.

    Importing the CLI can take seconds on a loaded host; that time counts against the promise too. A
    process that started long before this command ran (the CLI called in-process, e.g. from Python or
    tests) gets a fresh 5 s window instead.
    """
    started = psutil.Process().create_time()
    already = max(0.0, time.time() - started)
    if already > EMBEDDED_AFTER_S:
        already = 0.0
    return time.monotonic() + COMMAND_LIMIT_S - OUTPUT_MARGIN_S - already


class _OptionalWatchValue(TyperCommand):
    """Lets ``--watch`` stand alone (default interval) or take SECONDS: ``--watch`` / ``--watch 10``."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        fixed: list[str] = []
        for index, arg in enumerate(args):
            fixed.append(arg)
            if arg == "--watch":
                following = args[index + 1] if index + 1 < len(args) else None
                if following is None or following.startswith("-"):
                    fixed.append(str(DEFAULT_WATCH_S))
        return super().parse_args(ctx, fixed)


#: ``--watch``, whose value `_OptionalWatchValue` makes optional (hence the bracketed metavar).
_WATCH = typer.Option(
    None,
    "--watch",
    metavar="[SECONDS]",
    help=f"Refresh in place every SECONDS (default {DEFAULT_WATCH_S:g}).",
)


def _check_choice(value: str, allowed: tuple[str, ...], flag: str) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=flag)
    return value


def _override(flag: str, text: str) -> Any:
    """An option naming where one dependency is; left unset, `resolve_endpoints` finds it for the target."""
    return typer.Option(None, flag, help=text)


def health(
    target: str | None = typer.Option(
        None,
        "--target",
        "-t",
        help="Runtime: local, compose or kubernetes (default: the live release's). On compose, Postgres, "
        "Redis and the api are reached through `docker exec` relays that exist only while the command runs.",
    ),
    only: list[str] = typer.Option(
        [], "--only", help=f"Check only this component (repeatable): {', '.join(COMPONENTS)}."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the report as JSON (schema in docs/HEALTH.md)."
    ),
    watch: float | None = _WATCH,
    url: str | None = _override("--url", "api base URL, e.g. http://127.0.0.1:8000."),
    database_url: str | None = _override("--database-url", "Postgres URL (default SCHEDGEN_DATABASE_URL)."),
    redis_url: str | None = _override("--redis-url", "queue Redis URL (default SCHEDGEN_REDIS_URL)."),
    storage_url: str | None = _override("--storage-url", "Upload storage: file:///DIR or s3://BUCKET."),
    data_dir: Path | None = _override("--data-dir", "Directory whose filesystem holds the service data."),
    backup_dir: Path | None = _override("--backup-dir", "Backup directory (default PROJECT/backups)."),
    domain: str | None = _override("--domain", "Public HOST[:PORT] whose TLS certificate to check."),
    budget: float | None = typer.Option(
        None, "--budget", help="Seconds each check may take (default 2, max 4)."
    ),
) -> None:
    """Check api, Postgres, Redis, queue, storage, disk, backups, TLS. Exit 0 healthy, 1 degraded, 2 down."""
    # The probes' libraries (psycopg, redis, rq, httpx) load now, before any check's clock starts.
    import schedgen_ops.ops.health.checks  # noqa: F401
    from schedgen_ops.runtime.locate import default_target

    target = _check_choice(default_target(OPTIONS.project, target), TARGETS, "--target")
    for component in only:
        _check_choice(component, COMPONENTS, "--only")
    if watch is not None and watch <= 0:
        raise typer.BadParameter("must be a positive number of seconds", param_hint="--watch")
    if watch is not None and as_json:
        raise typer.BadParameter("--watch refreshes a table; use --json without it", param_hint="--watch")
    project = OPTIONS.project
    overrides: dict[str, Any] = {} if budget is None else {"check_budget_s": budget}
    warnings: list[str] = []
    config = try_load_config(project, warnings)
    thresholds = load_thresholds(project, overrides, config=config)
    endpoints = resolve_endpoints(
        target,
        project,
        api_url=url,
        database_url=database_url,
        redis_url=redis_url,
        storage_url=storage_url,
        backup_dir=backup_dir,
        data_dir=data_dir,
        domain=domain,
        config=config,
    )
    for line in warnings:
        Console(stderr=True, highlight=False).print(f"warning: {line}", markup=False)

    first_deadline: list[float | None] = [_process_deadline()]

    def once() -> HealthReport:
        # The first run is bounded by the process's 5 s; each --watch refresh by 5 s of its own.
        hard = (
            first_deadline.pop() if first_deadline else time.monotonic() + COMMAND_LIMIT_S - OUTPUT_MARGIN_S
        )
        hard = max(hard or 0.0, time.monotonic() + MIN_CHECK_S)
        return run_health(endpoints, thresholds, only=only or None, hard_deadline=hard)

    console = Console(highlight=False)
    with contextlib.ExitStack() as stack:
        if target == "compose" and config is not None:
            from schedgen_ops.ops.health.compose_access import reach_compose

            stack.enter_context(reach_compose(project, config, endpoints, explicit={
                "api_url": url, "database_url": database_url, "redis_url": redis_url,
            }))  # fmt: skip
        if watch is not None:
            raise typer.Exit(_watch(console, once, watch))
        report = once()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        console.print(report_view(report))
    raise typer.Exit(report.exit_code)


def _watch(console: Console, once: Callable[[], HealthReport], interval: float) -> int:
    """Re-run every ``interval`` seconds until Ctrl-C; returns the last verdict's exit code.

    On a terminal the table refreshes in place (rich Live); piped into a file or CI log, each run is
    printed as its own block, so the log keeps the history.
    """
    report = once()
    try:
        if console.is_terminal:
            with Live(report_view(report), console=console, auto_refresh=False) as live:
                while True:
                    time.sleep(max(0.0, interval - report.duration_ms / 1000))
                    report = once()
                    live.update(report_view(report), refresh=True)
        else:
            while True:
                console.print(report_view(report))
                console.print()
                console.file.flush()
                time.sleep(max(0.0, interval - report.duration_ms / 1000))
                report = once()
    except KeyboardInterrupt:
        pass
    return report.exit_code


def register(app: typer.Typer) -> None:
    """Add `schedgen health` to the top-level app."""
    app.command("health", cls=_OptionalWatchValue)(health)
