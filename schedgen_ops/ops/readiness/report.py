"""Render a checklist report as a rich table, JSON, Markdown, JUnit XML or SARIF 2.1.0."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from schedgen_ops import __version__
from schedgen_ops.ops.readiness.evaluate import Report
from schedgen_ops.ops.readiness.model import CATEGORIES, Finding, Result

FORMATS = ("table", "json", "markdown", "junit", "sarif")
SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
_ICON = {
    "pass": "[green]✔ pass[/]",
    "fail": "[red]✘ fail[/]",
    "error": "[red]! error[/]",
    "skip": "[dim]- skip[/]",
    "suppressed": "[yellow]~ suppressed[/]",
    "acknowledged": "[green]✔ ack[/]",
    "pending": "[yellow]? pending[/]",
}


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``schedgen checklist --format json``."""
    return dict(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2)


def _detail(result: Result) -> str:
    if result.status == "suppressed":
        return f"reason: {result.suppressed_reason}"
    if result.status == "acknowledged" and result.acknowledgement:
        ack = result.acknowledgement
        return f"{ack.by} on {ack.at}: {ack.note}"
    text = result.message
    bad = [f for f in result.findings if not f.ok]
    if bad and bad[0].evidence.file:
        ev = bad[0].evidence
        text += f"\n  at {ev.file}" + (f" {ev.path}" if ev.path else "")
    if result.failing:
        text += f"\n  fix: {result.check.fix}"
    return text


#: Below this many columns the evidence gets its own indented lines instead of a squeezed table column.
WIDE_TABLE_COLUMNS = 120
_ORDER = {"fail": 0, "error": 0, "pending": 1, "suppressed": 2, "pass": 3, "acknowledged": 3, "skip": 4}


def print_table(report: Report, console: Console) -> None:
    """Grouped by category, failures first within each group, then the score and exit verdict."""
    for category in CATEGORIES:
        rows = sorted(
            (r for r in report.results if r.check.category == category),
            key=lambda r: (_ORDER[r.status], r.check.id),
        )
        if not rows:
            continue
        if console.width < WIDE_TABLE_COLUMNS:
            _print_narrow(category, rows, console)
            continue
        table = Table(title=category.capitalize(), title_justify="left", expand=True, show_lines=False)
        table.add_column("status", no_wrap=True, width=13)
        table.add_column("check", no_wrap=True)
        table.add_column("sev", no_wrap=True)
        table.add_column("kind", no_wrap=True)
        table.add_column("evidence", ratio=1)
        for r in rows:
            table.add_row(_ICON[r.status], r.check.id, _severity(r), r.check.kind, _escape(_detail(r)))
        console.print(table)
    counts = report.counts()
    summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    console.print(f"score [bold]{report.score:g}[/] ({summary})")
    dangers = report.failed_dangers()
    if dangers:
        console.print(
            f"[red]FAIL[/]: danger checks failed: {', '.join(r.check.id for r in dangers)} (exit 3)"
        )
    elif report.exit_code == 4:
        console.print(f"[red]FAIL[/]: score {report.score:g} below --min-score {report.min_score:g} (exit 4)")
    else:
        console.print("[green]PASS[/]")


def _print_narrow(category: str, rows: list[Result], console: Console) -> None:
    """An 80-column terminal: one line per check, and evidence longer than what is left of that line
    on lines of its own, indented, wrapped at the terminal's width (not in a 16-column cell)."""
    console.print(f"[bold]{category.capitalize()}[/]")
    width = max(len(r.check.id) for r in rows)
    for r in rows:
        icon = Text.from_markup(_ICON[r.status])
        head = Text("  ").append(icon).append(" " * max(1, 14 - len(icon.plain)))
        severity = Text.from_markup(_severity(r))
        head.append(r.check.id.ljust(width) + "  ").append_text(severity)
        head.append(" " * (9 - len(severity.plain)) + r.check.kind)
        detail = _detail(r)
        if "\n" not in detail and head.cell_len + 2 + len(detail) <= console.width:
            console.print(head.append("  " + detail))
            continue
        console.print(head)
        for line in detail.splitlines():
            console.print(Padding(Text(line.strip()), (0, 0, 0, 6)))


def _severity(result: Result) -> str:
    return "[red]danger[/]" if result.check.severity == "danger" else "warning"


def _escape(text: str) -> str:
    return text.replace("[", "\\[")


def to_markdown(report: Report) -> str:
    counts = report.counts()
    lines = [
        "# Production readiness",
        "",
        f"Score **{report.score:g}** · exit {report.exit_code} · profile {report.profile or '-'} · "
        f"targets {', '.join(report.targets)} · live {'yes' if report.live else 'no'} · "
        f"{report.generated_at}",
        "",
        " · ".join(f"{s}: {n}" for s, n in counts.items() if n),
        "",
    ]
    for category in CATEGORIES:
        rows = [r for r in report.results if r.check.category == category]
        if not rows:
            continue
        lines += [
            f"## {category.capitalize()}",
            "",
            "| status | check | severity | kind | evidence |",
            "|---|---|---|---|---|",
        ]
        for r in rows:
            detail = _detail(r).replace("\n", "<br>").replace("|", "\\|")
            lines.append(f"| {r.status} | `{r.check.id}` | {r.check.severity} | {r.check.kind} | {detail} |")
        lines.append("")
    return "\n".join(lines)


def to_junit(report: Report) -> str:
    """One testsuite per category, one testcase per check; failing checks are <failure>, skips <skipped>."""
    root = ET.Element("testsuites", name="schedgen checklist", tests=str(len(report.results)))
    for category in CATEGORIES:
        rows = [r for r in report.results if r.check.category == category]
        if not rows:
            continue
        suite = ET.SubElement(
            root,
            "testsuite",
            name=category,
            tests=str(len(rows)),
            failures=str(sum(1 for r in rows if r.status in ("fail", "pending"))),
            errors=str(sum(1 for r in rows if r.status == "error")),
            skipped=str(sum(1 for r in rows if r.status in ("skip", "suppressed"))),
        )
        for r in rows:
            case = ET.SubElement(suite, "testcase", classname=f"checklist.{category}", name=r.check.id)
            body = "\n".join(
                f"{'ok' if f.ok else 'FAIL'}: {f.message} [{f.evidence.file} {f.evidence.path}]"
                for f in r.findings
            )
            if r.status in ("fail", "pending"):
                ET.SubElement(
                    case, "failure", message=r.message, type=r.check.severity
                ).text = f"{body}\nfix: {r.check.fix}"
            elif r.status == "error":
                ET.SubElement(case, "error", message=r.message, type=r.check.severity).text = r.check.fix
            elif r.status in ("skip", "suppressed"):
                ET.SubElement(case, "skipped", message=r.suppressed_reason or r.message)
            if body:
                ET.SubElement(case, "system-out").text = body
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def to_sarif(report: Report) -> str:
    """SARIF 2.1.0: one rule per check, one result per failing finding, located at the evidence file."""
    rules = [
        {
            "id": r.check.id,
            "name": r.check.id,
            "shortDescription": {"text": r.check.title},
            "fullDescription": {"text": r.check.why},
            "help": {"text": r.check.fix},
            "defaultConfiguration": {"level": "error" if r.check.severity == "danger" else "warning"},
            "properties": {"category": r.check.category, "kind": r.check.kind},
        }
        for r in report.results
    ]
    results: list[dict[str, Any]] = []
    for index, r in enumerate(report.results):
        if not r.failing:
            continue
        level = "error" if r.check.severity == "danger" else "warning"
        findings: list[Finding | None] = [f for f in r.findings if not f.ok] or [None]
        for finding in findings:
            entry: dict[str, Any] = {
                "ruleId": r.check.id,
                "ruleIndex": index,
                "level": level,
                "message": {"text": finding.message if finding else r.message},
            }
            file = finding.evidence.file if finding else None
            if file:
                entry["locations"] = [
                    {
                        "physicalLocation": {"artifactLocation": {"uri": file}},
                        "logicalLocations": [{"fullyQualifiedName": finding.evidence.path or ""}]
                        if finding
                        else [],
                    }
                ]
            results.append(entry)
    for r in report.results:
        if r.status == "suppressed":
            results.append(
                {
                    "ruleId": r.check.id,
                    "level": "note",
                    "message": {"text": "suppressed"},
                    "suppressions": [{"kind": "external", "justification": r.suppressed_reason or ""}],
                }
            )
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "schedgen checklist",
                        "version": __version__,
                        "informationUri": "https://github.com/schedgen/schedgen-ops",
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {"score": report.score, "exit_code": report.exit_code},
            }
        ],
    }
    return json.dumps(doc, indent=2)


def render(report: Report, fmt: str) -> str:
    """Text of a non-table format."""
    return {"json": to_json, "markdown": to_markdown, "junit": to_junit, "sarif": to_sarif}[fmt](report)
