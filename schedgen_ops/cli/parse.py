"""`schedgen parse`: UP timetable PDFs -> table, JSON, CSV or one merged calendar (.ics)."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.errors import SchedgenError
from schedgen_ops.parsing import ExamSitting, LectureEvent, Timetable, parse_pdf
from schedgen_ops.parsing.semesters import SemesterDates, resolve_semester

if TYPE_CHECKING:
    from rich.table import Table

# Output modules (icalendar, the JSON schema model, rich tables) are imported only for the format
# asked for: `schedgen parse` is measured for peak RSS (docs/PERFORMANCE.md).


class Format(StrEnum):
    table = "table"
    json = "json"
    ics = "ics"
    csv = "csv"


class SemesterName(StrEnum):
    S1 = "S1"
    S2 = "S2"
    Y = "Y"


def _date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


def semester_overrides(project: Path) -> dict[str, Any] | None:
    """The ``semesters:`` mapping of the project's schedgen.yaml, if any (validated by resolve_semester)."""
    from schedgen_ops.config.loader import read_project

    value = read_project(project).get("semesters")
    return dict(value) if isinstance(value, dict) else None


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file in the same directory and rename: never a partial output file."""
    path = path.expanduser()
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        raise SchedgenError(f"cannot write {path}: {directory} is not a directory", code="bad_output")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _rich_table(timetables: list[Timetable]) -> Table:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for col in ("Kind", "Module", "What", "When", "Time", "Venue(s)", "Campus"):
        table.add_column(col)
    for tt in timetables:
        for ev in tt.events:
            if isinstance(ev, LectureEvent):
                what, when = f"{ev.activity} {ev.group}", f"{ev.weekday} ({ev.offered})"
                time, venue, campus = f"{ev.start:%H:%M}-{ev.end:%H:%M}", ev.venue, ev.campus
            elif isinstance(ev, ExamSitting):
                what, when = f"{ev.activity} (paper {ev.paper})", ev.date.isoformat()
                time = f"{ev.start:%H:%M}" + (f"-{ev.end:%H:%M}" if ev.end else "")
                venue, campus = ev.venue, ev.exam_campus
            else:
                what, when = ev.test, ev.date.isoformat()
                time, venue, campus = f"{ev.start:%H:%M}-{ev.end:%H:%M}", "\n".join(ev.venues), ev.campus
            table.add_row(tt.kind, ev.module, what, when, time, venue, campus)
    return table


def parse_command(
    files: list[Path] = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        readable=True,
        help="UP timetable PDFs (lectures, tests, exams); several are merged.",
    ),
    fmt: Format = typer.Option(Format.table, "--format", "-f", help="Output format."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
    date_from: str | None = typer.Option(
        None, "--from", metavar="DATE", help="First day lectures repeat from (YYYY-MM-DD)."
    ),
    date_until: str | None = typer.Option(
        None, "--until", metavar="DATE", help="Last day of lectures, inclusive (YYYY-MM-DD)."
    ),
    semester: SemesterName | None = typer.Option(
        None, "--semester", help="Use this semester's dates (schedgen.yaml semesters: overrides defaults)."
    ),
    group: list[str] = typer.Option(
        [],
        "--group",
        metavar="MODULE=GROUP[,GROUP]",
        help='Keep only these groups of a module, e.g. "COS 214=P01" (repeatable).',
    ),
    exam_duration: int = typer.Option(
        180, "--exam-duration", min=1, max=24 * 60, help="Assumed exam length in minutes (ics)."
    ),
) -> None:
    """Parse UP timetable PDFs into a table, JSON, CSV or one calendar (.ics)."""
    start, until = _date(date_from), _date(date_until)
    groups = None
    if group:
        from schedgen_ops.parsing.ics import parse_group_filters

        groups = parse_group_filters(group)
    if semester is not None:
        dates: SemesterDates = resolve_semester(semester.value, semester_overrides(OPTIONS.project))
        start, until = start or dates.start, until or dates.end

    timetables: list[Timetable] = []
    for path in files:
        try:
            timetables.append(parse_pdf(path))
        except SchedgenError as exc:
            exc.message = f"{path}: {exc.message}"
            raise

    if fmt is Format.table:
        console = Console(file=sys.stdout if output is None else None, width=160)
        if output is not None:
            with console.capture() as cap:
                console.print(_rich_table(timetables))
            data = cap.get().encode()
        else:
            console.print(_rich_table(timetables))
            for tt in timetables:
                for warning in tt.warnings:
                    typer.echo(f"warning: {tt.source.filename if tt.source else ''}: {warning}", err=True)
            return
    elif fmt is Format.json:
        from schedgen_ops.parsing.export import to_json

        data = (json.dumps(to_json(timetables), indent=2) + "\n").encode()
    elif fmt is Format.csv:
        from schedgen_ops.parsing.export import to_csv

        data = to_csv(timetables).encode()
    else:
        from schedgen_ops.parsing.ics import to_ics

        sem = semester.value if semester is not None and semester.value in ("S1", "S2") else None
        data = to_ics(
            timetables,
            date_from=start,
            date_until=until,
            exam_duration_min=exam_duration,
            group_filter=groups,
            semester=sem,
        )
    for tt in timetables:
        for warning in tt.warnings:
            typer.echo(f"warning: {tt.source.filename if tt.source else ''}: {warning}", err=True)
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_atomic(output, data)
        events = sum(len(t.events) for t in timetables)
        typer.echo(f"wrote {output} ({len(data)} bytes, {events} events)", err=True)


def register(app: typer.Typer) -> None:
    app.command(
        "parse",
        help="Parse UP timetable PDFs into a table, JSON, CSV or one merged calendar (.ics).",
        short_help="Parse UP timetable PDFs into a table, JSON, CSV or a calendar.",
    )(parse_command)
