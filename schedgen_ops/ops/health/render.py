"""The human view: one rich table grouped by component, and the overall verdict under it."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from schedgen_ops.ops.health.model import HealthReport, Status, Verdict, component_status

STYLE = {Status.OK: "green", Status.WARN: "yellow", Status.CRITICAL: "bold red", Status.UNKNOWN: "dim"}
VERDICT_STYLE = {Verdict.HEALTHY: "bold green", Verdict.DEGRADED: "bold yellow", Verdict.DOWN: "bold red"}


def report_table(report: HealthReport) -> Table:
    table = Table(title=f"schedgen health — target {report.target}", title_justify="left", expand=False)
    table.add_column("component", style="bold", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("measured")
    table.add_column("threshold")
    groups = report.by_component()
    for index, (component, checks) in enumerate(groups.items()):
        worst = component_status(checks)
        for row, check in enumerate(checks):
            table.add_row(
                Text(component, style=STYLE[worst]) if row == 0 else "",
                check.name,
                Text(check.status.value.upper(), style=STYLE[check.status]),
                check.measured,
                check.threshold or "",
                end_section=row == len(checks) - 1 and index < len(groups) - 1,
            )
    return table


def verdict_line(report: HealthReport) -> Text:
    counts = {s: sum(1 for c in report.checks if c.status is s) for s in Status}
    verdict = report.verdict
    text = Text()
    text.append(f"{verdict.value.upper()}", style=VERDICT_STYLE[verdict])
    text.append(
        f"  {counts[Status.CRITICAL]} critical, {counts[Status.WARN]} warn, {counts[Status.OK]} ok, "
        f"{counts[Status.UNKNOWN]} unknown  ·  {report.duration_ms / 1000:.2f} s  ·  "
        f"exit {report.exit_code}  ·  "
        f"{report.started_at:%Y-%m-%d %H:%M:%S} UTC"
    )
    return text


def hint_lines(report: HealthReport) -> Text:
    """One line per check that is not ok, worst first: what on-call should do."""
    rank = {Status.CRITICAL: 0, Status.WARN: 1, Status.UNKNOWN: 2}
    flagged = sorted(
        (c for c in report.checks if c.status is not Status.OK and c.hint), key=lambda c: rank[c.status]
    )
    text = Text()
    for check in flagged:
        text.append(f"{check.status.value.upper():<8} ", style=STYLE[check.status])
        text.append(f"{check.id}: ", style="bold")
        text.append(f"{check.hint}\n")
    text.rstrip()
    return text


def report_view(report: HealthReport) -> Group:
    """Table, then the hints of everything not ok, then the verdict line."""
    hints = hint_lines(report)
    parts: list[RenderableType] = [report_table(report)]
    if hints.plain:
        parts += [Text("What to do:", style="bold"), hints]
    parts.append(verdict_line(report))
    return Group(*parts)
