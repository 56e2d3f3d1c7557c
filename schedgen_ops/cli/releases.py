"""`schedgen releases` and `schedgen audit`: what was deployed, and who did what."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from schedgen_ops.cli._ops import make_ops, out


def releases(as_json: bool = typer.Option(False, "--json", help="Print the releases as JSON.")) -> None:
    """List releases, oldest first; the live one is marked."""
    ops = make_ops()
    items = ops.releases.history()
    current = ops.releases.current_id()
    if as_json:
        typer.echo(json.dumps({"current": current, "releases": [r.to_dict() for r in items]}, indent=2))
        return
    if not items:
        out.print("no releases yet (run `schedgen up` or `schedgen deploy`)")
        return
    table = Table("", "release", "status", "target", "profile", "created", "user", "git", "note", box=None)
    for r in items:
        table.add_row(
            "*" if r.id == current else "",
            r.id,
            r.status,
            r.target,
            r.profile or "-",
            r.created[:19],
            r.user,
            (r.git_commit or "-")[:10],
            (r.note or "")[:60],
        )
    out.print(table)


def audit(
    n: int = typer.Option(20, "-n", min=1, help="Show the last N entries."),
    commands: bool = typer.Option(False, "--commands", help="Include every command and step the runner ran."),
    as_json: bool = typer.Option(False, "--json", help="Print the entries as JSON lines."),
) -> None:
    """The audit trail (.schedgen/audit.jsonl): time, user, host, action, release, result, duration."""
    ops = make_ops()
    entries = ops.audit.tail(None if not commands else n)
    if not commands:
        entries = [e for e in entries if e.get("action") not in ("command", "step")][-n:]
    if as_json:
        for entry in entries:
            typer.echo(json.dumps(entry))
        return
    table = Table("time", "user@host", "action", "release", "result", "duration", box=None)
    for e in entries:
        what = e["action"] if e["action"] != "command" else "$ " + " ".join(e.get("argv", []))[:60]
        if e["action"] == "step":
            what = "- " + str(e.get("step", ""))[:60]
        table.add_row(
            e["time"][:19],
            f"{e['user']}@{e['host']}",
            what,
            e.get("release") or "-",
            str(e.get("result")),
            "-" if e.get("duration_s") is None else f"{e['duration_s']:.1f}s",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command("releases", help="List releases (the live one is marked).")(releases)
    app.command("audit", help="Show the audit trail of deploys, scales, rollbacks.")(audit)
