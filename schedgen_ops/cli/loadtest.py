"""`schedgen loadtest SCENARIO`: run a load-test scenario with locust and gate CI on its thresholds.

Thin: parse options, call `schedgen_ops.ops.loadtest.run.run_scenario`, print the verdict (or the
JSON summary with --json) and exit 0 when every threshold passed, 1 otherwise.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.loadtest.scenarios import SCENARIOS, THRESHOLDS
from schedgen_ops.ops.loadtest.target import check_url

_out = Console(highlight=False, soft_wrap=True)
_err = Console(stderr=True, highlight=False, soft_wrap=True)

_HELP = (
    "Run a load-test scenario against the local stack (127.0.0.1 only) and judge its thresholds.\n\n"
    + "\n\n".join(f"[bold]{name}[/bold]: {scenario.description}" for name, scenario in SCENARIOS.items())
    + "\n\nThresholds (--threshold NAME=VALUE): "
    + ", ".join(f"{name} ({spec.op} {spec.unit})" for name, spec in THRESHOLDS.items())
    + ".\n\nAPI keys: every simulated client gets its own short-lived key. With an ops token "
    "(--ops-token / SCHEDGEN_OPS_TOKEN; with --target local read from the project's stack) they are minted "
    "over HTTP by the api (POST /api/ops/loadtest-keys), so nothing but the api needs to be reachable; "
    "with only --database-url they are created in the service database. Either way they are revoked when "
    "the run ends, also on failure or Ctrl-C, and expire shortly after the planned run regardless."
    + "\n\nExit code: 0 every threshold passed, 1 one failed (or the run failed), 2 usage error."
)


def _parse_metrics_urls(values: list[str]) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, url = value.partition("=")
        if not sep or not name or not url:
            raise SchedgenError(
                f"bad --metrics-url {value!r}", code="usage", hint="write NAME=URL", exit_code=2
            )
        out[name] = check_url(url)
    return out


def loadtest(
    scenario: str = typer.Argument(
        ..., help="baseline | upload | status | stress | spike | soak", show_default=False
    ),
    url: str | None = typer.Option(None, "--url", help="Base URL of the api (loopback only)."),
    target: str | None = typer.Option(
        None, "--target", help="Deploy target of this project whose api to test (e.g. local)."
    ),
    time_scale: float = typer.Option(
        1.0, "--time-scale", min=0.0001, help="Multiply every duration by this."
    ),
    users_scale: float = typer.Option(
        1.0, "--users-scale", min=0.0001, help="Multiply every user count by this."
    ),
    threshold: list[str] = typer.Option(
        [], "--threshold", help="Override/add a threshold: NAME=VALUE (repeat)."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Report directory (default: loadtest-reports/SCENARIO-TIMESTAMP)."
    ),
    ops_token: str = typer.Option(
        "",
        "--ops-token",
        envvar="SCHEDGEN_OPS_TOKEN",
        help="The api's ops token: mint the run's API keys over HTTP (preferred; needs no database access). "
        "With --target local it is read from the project's stack.",
        show_default=False,
    ),
    database_url: str = typer.Option(
        "",
        "--database-url",
        envvar="SCHEDGEN_DATABASE_URL",
        help="Service database: create the run's API keys there when no ops token is available "
        "(fallback; also used if the api predates the key endpoint).",
        show_default=False,
    ),
    metrics_url: list[str] = typer.Option(
        [],
        "--metrics-url",
        help="NAME=URL of a /metrics to sample RSS from (default: the api's and the workers').",
    ),
    abort_after: float = typer.Option(
        15.0,
        "--abort-after",
        min=1.0,
        help="Stop the run when the api has answered nothing for this long (s).",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON summary (see docs/LOAD_TESTING.md)."),
) -> None:
    from schedgen_ops.ops.loadtest.keys import key_provider, project_ops_token
    from schedgen_ops.ops.loadtest.run import RunOptions, run_scenario
    from schedgen_ops.ops.loadtest.target import resolve_target

    if scenario not in SCENARIOS:
        raise SchedgenError(
            f"unknown scenario {scenario!r}",
            code="usage",
            hint="one of: " + ", ".join(SCENARIOS),
            exit_code=2,
        )
    if url and target:
        raise SchedgenError("give --url or --target, not both", code="usage", exit_code=2)
    resolved = resolve_target(target, url=url, database_url=database_url, project_dir=OPTIONS.project)
    report_dir = (
        report or Path("loadtest-reports") / f"{scenario}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    )

    def progress(message: str) -> None:
        _err.print(f"loadtest: {message}", markup=False)

    keys = key_provider(
        resolved.url,
        ops_token=ops_token or project_ops_token(target, OPTIONS.project),
        database_url=resolved.database_url,
        progress=progress,
    )
    options = RunOptions(
        scenario=scenario,
        url=resolved.url,
        report_dir=report_dir.resolve(),
        keys=keys,
        time_scale=time_scale,
        users_scale=users_scale,
        threshold_overrides=list(threshold),
        auth_header=resolved.auth_header,
        auth_prefix=resolved.auth_prefix,
        uploads_per_key=resolved.uploads_per_key,
        metrics_urls=_parse_metrics_urls(metrics_url) or resolved.metrics_urls,
        abort_after_s=abort_after,
        progress=progress,
    )
    with _interrupts_raise():
        summary = run_scenario(options)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        _print_human(summary)
    raise typer.Exit(summary["exit_code"])


@contextlib.contextmanager
def _interrupts_raise() -> Iterator[None]:
    """SIGTERM (a cancelled CI job) and Ctrl-C unwind the run like an error, so its keys are revoked."""

    def on_sigterm(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except KeyboardInterrupt:
        raise SchedgenError(
            "the load test was interrupted", code="interrupted", hint="no report was written"
        ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _print_human(summary: dict) -> None:
    table = Table(title=f"loadtest {summary['scenario']}", title_justify="left")
    for column in ("threshold", "limit", "actual", "result"):
        table.add_column(column)
    for result in summary["thresholds"]:
        verdict = "[green]pass[/green]" if result["passed"] else "[red]FAIL[/red]"
        if not result["gate"]:
            verdict += " (per step)"
        actual = "no data" if result["actual"] is None else f"{result['actual']:g}"
        table.add_row(result["name"], f"{result['op']} {result['limit']:g} {result['unit']}", actual, verdict)
    _out.print(table)
    jobs = summary["jobs"]
    _out.print(
        f"requests {summary['totals']['requests']}, error rate {summary['totals']['error_rate']}, "
        f"p95 {summary['totals']['p95_ms']} ms; jobs {jobs['completed']}/{jobs['uploaded']} completed"
    )
    if summary.get("breaking_point"):
        point = summary["breaking_point"]
        _out.print(f"breaking point: {point['users']} users ({', '.join(point['crossed'])})")
    elif summary.get("sustained_users") is not None:
        _out.print(f"no breaking point: sustained {summary['sustained_users']} users")
    if summary.get("aborted"):
        _out.print(f"[red]aborted:[/red] {summary['aborted']}")
    _out.print(
        ("[green]PASS[/green]" if summary["passed"] else "[red]FAIL[/red]")
        + f"  report: {summary['files']['markdown']}"
    )


def register(app: typer.Typer) -> None:
    """Add `schedgen loadtest` to the top-level app."""
    app.command("loadtest", help=_HELP)(loadtest)
