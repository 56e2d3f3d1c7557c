"""`schedgen checklist`: production readiness proven by evidence, with a score and CI exit codes.

Static mode renders the project's configuration into a temporary directory (or reads ``--dir``) and checks
it; ``--live`` adds checks against the running stack. Exit 0 pass, 3 a danger check failed, 4 score below
``--min-score``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.readiness import Context, LiveTarget, RenderedTree, all_checks, evaluate, load_acks
from schedgen_ops.ops.readiness.acks import record_ack
from schedgen_ops.ops.readiness.evaluate import Report
from schedgen_ops.ops.readiness.locate import DEFAULT_URL, local_deployment
from schedgen_ops.ops.readiness.report import FORMATS, print_table, render
from schedgen_ops.targets import TARGETS

app = typer.Typer(
    help="Production-readiness checklist: static, live and manual checks with evidence.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def _config(profile: str | None, overrides: list[str]) -> Any:
    from schedgen_ops.config.loader import load_config

    return load_config(OPTIONS.project, profile=profile, overrides=overrides)


def _secrets() -> tuple[dict[str, str], bool]:
    """The project's secrets (scanned for in the tree), or throw-away ones when it has none yet."""
    from schedgen_ops.config.secrets import generate_secrets, load_secrets, secrets_path

    if secrets_path(OPTIONS.project).is_file():
        return load_secrets(OPTIONS.project), False
    return generate_secrets(), True


def _targets(target: str, tree: RenderedTree) -> frozenset[str]:
    if target == "all":
        stamped = tree.stamp().get("targets")
        return frozenset(stamped) if isinstance(stamped, list) and stamped else frozenset(TARGETS)
    if target not in TARGETS:
        raise typer.BadParameter(f"{target!r} is not one of all, {', '.join(TARGETS)}", param_hint="--target")
    return frozenset({target})


def _live_target(
    target: str,
    url: str | None,
    tree_dir: Path | None,
    database_url: str | None,
    backup_dir: Path | None,
    reports: list[Path],
    worker_metrics: list[str] | None = None,
) -> LiveTarget:
    """Explicit flags first; otherwise the local runtime's active deployment (URLs, rendered runbook)."""
    runbook = (tree_dir or OPTIONS.project / "deploy") / "docs" / "RUNBOOK.md"
    redis_url = None
    workers = list(worker_metrics or [])
    if url is None and target in ("local", "all"):
        found = local_deployment(OPTIONS.project)
        url = found.url
        database_url = database_url or found.database_url
        redis_url = found.redis_url
        workers = workers or list(found.worker_metrics_urls)
        if found.tree is not None and tree_dir is None:
            runbook = found.tree / "docs" / "RUNBOOK.md"
    return LiveTarget(
        url=url or DEFAULT_URL,
        backup_dir=backup_dir,
        report_dirs=reports,
        runbook=runbook,
        health_target=target if target in TARGETS else "local",
        database_url=database_url,
        redis_url=redis_url,
        worker_metrics_urls=workers,
    )


def run_checklist(
    *,
    profile: str | None,
    target: str,
    live: bool,
    url: str | None,
    tree_dir: Path | None,
    overrides: list[str],
    min_score: float | None,
    only: list[str],
    reports: list[Path],
    backup_dir: Path | None,
    database_url: str | None = None,
    worker_metrics: list[str] | None = None,
) -> Report:
    """Build the context (rendering when no --dir is given) and evaluate the checklist."""
    config = _config(profile, overrides)
    secrets, _ = _secrets()
    with tempfile.TemporaryDirectory(prefix="schedgen-checklist-") as tmp:
        if tree_dir is None:
            from schedgen_ops.render.engine import render_tree

            root = Path(tmp) / "rendered"
            render_tree(config, secrets, target, root, project_dir=OPTIONS.project)
            source = f"rendered {config.profile}/{target} into a temporary directory"
        else:
            if not tree_dir.is_dir():
                raise SchedgenError(
                    f"{tree_dir} is not a directory", code="no_tree", hint="run `schedgen render -o DIR`"
                )
            root, source = tree_dir, str(tree_dir)
        tree = RenderedTree(root)
        stamp = tree.stamp()
        ctx = Context(
            project=OPTIONS.project,
            tree=tree,
            targets=_targets(target, tree),
            profile=profile or stamp.get("profile") or config.profile,
            config=config,
            secret_values=secrets,
        )
        if live:
            ctx.live = _live_target(target, url, tree_dir, database_url, backup_dir, reports, worker_metrics)
        ignore = config.checklist.get("ignore") or {}
        return evaluate(
            ctx,
            live=live,
            ignore=ignore,
            acks=load_acks(OPTIONS.project),
            only=only or None,
            min_score=min_score,
            source=source,
        )


@app.callback()
def checklist(
    ctx: typer.Context,
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Scale profile (default: the project's)."
    ),
    target: str = typer.Option("all", "--target", "-t", help="compose, kubernetes, local or all."),
    live: bool = typer.Option(
        False, "--live", help="Also check the running stack (readiness, metrics, ...)."
    ),
    url: str | None = typer.Option(None, "--url", help=f"api base URL for --live (default {DEFAULT_URL})."),
    tree_dir: Path | None = typer.Option(
        None, "--dir", help="Check an existing rendered tree instead of rendering."
    ),
    fmt: str = typer.Option("table", "--format", "-f", help=f"Output: {', '.join(FORMATS)}."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the report to FILE too."),
    min_score: float | None = typer.Option(None, "--min-score", help="Exit 4 when the score is below N."),
    overrides: list[str] = typer.Option([], "--set", help="Override a config value KEY=VALUE (repeatable)."),
    only: list[str] = typer.Option([], "--only", help="Run only this check id (repeatable)."),
    reports: list[Path] = typer.Option([], "--reports", help="Load-test report directory for --live."),
    backup_dir: Path | None = typer.Option(
        None, "--backup-dir", help="Backup directory (default PROJECT/backups)."
    ),
    database_url: str | None = typer.Option(
        None,
        "--database-url",
        help="Ledger URL for the --live rate-limit probe key (default SCHEDGEN_DATABASE_URL).",
    ),
    worker_metrics: list[str] = typer.Option(
        [],
        "--worker-metrics",
        metavar="URL",
        help="A worker metrics URL for --live (repeatable; default: the api's /metrics).",
    ),
) -> None:
    """Check production readiness; exit 0 pass, 3 a danger check failed, 4 score below --min-score."""
    if ctx.invoked_subcommand is not None:
        return
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}", param_hint="--format")
    report = run_checklist(
        profile=profile,
        target=target,
        live=live,
        url=url,
        tree_dir=tree_dir,
        overrides=overrides,
        min_score=min_score,
        only=only,
        reports=reports,
        backup_dir=backup_dir,
        database_url=database_url,
        worker_metrics=worker_metrics,
    )
    if fmt == "table":
        print_table(report, Console(highlight=False))
        text = render(report, "markdown") if output else ""
    else:
        text = render(report, fmt)
        typer.echo(text)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    raise typer.Exit(report.exit_code)


@app.command("ack")
def ack(
    check_id: str = typer.Argument(..., metavar="ID", help="Manual item id (see `schedgen checklist list`)."),
    by: str = typer.Option(..., "--by", help="Who confirms it."),
    note: str = typer.Option(..., "--note", help="What was done / where the proof is."),
    as_json: bool = typer.Option(False, "--json", help="Print the recorded acknowledgement as JSON."),
) -> None:
    """Record a manual item's acknowledgement (who, when, note) in .schedgen/checklist-acks.json."""
    recorded = record_ack(OPTIONS.project, check_id, by, note)
    if as_json:
        typer.echo(json.dumps({"id": check_id, **recorded.to_dict()}))
    else:
        typer.echo(f"acknowledged {check_id} by {recorded.by} at {recorded.at}")


@app.command("list")
def list_checks(as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON.")) -> None:
    """List every check with its category, severity and kind."""
    checks = all_checks()
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in checks], indent=2))
        return
    table = Table(expand=True)
    for column in ("id", "kind", "category", "severity", "what"):
        table.add_column(column, no_wrap=column != "what")
    for c in checks:
        table.add_row(c.id, c.kind, c.category, c.severity, c.title)
    Console(highlight=False).print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="checklist")
