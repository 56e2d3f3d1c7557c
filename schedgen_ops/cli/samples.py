"""`schedgen samples`: synthetic UP-format timetable PDFs for demos, tests and load-test fixtures."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from schedgen_ops.cli.parse import write_atomic


class SampleKind(StrEnum):
    lectures = "lectures"
    tests = "tests"
    exams = "exams"


class SampleSemester(StrEnum):
    S1 = "S1"
    S2 = "S2"


samples_app = typer.Typer(no_args_is_help=True, help="Synthetic UP timetable PDFs (never real student data).")


@samples_app.command("generate")
def generate(
    out: Path = typer.Argument(..., help="PDF file to write."),
    kind: SampleKind = typer.Option(SampleKind.lectures, "--kind", help="Timetable kind."),
    pages: int | None = typer.Option(None, "--pages", min=1, max=500, help="Fill exactly this many pages."),
    rows: int | None = typer.Option(None, "--rows", min=1, help="Number of table rows (instead of --pages)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same seed, same PDF."),
    semester: SampleSemester = typer.Option(SampleSemester.S2, "--semester", help="Semester of the dates."),
) -> None:
    """Write a synthetic UP-format timetable PDF."""
    # Imported here: fpdf2 pulls in fontTools/numpy/PIL (~40 MB RSS) that no other command needs.
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    if pages is not None and rows is not None:
        raise typer.BadParameter("give --pages or --rows, not both")
    timetable = generate_timetable(
        kind.value,
        seed=seed,
        n_rows=rows,
        pages=None if rows is not None else (pages or 1),
        semester=semester.value,
    )
    data = render_pdf(timetable)
    write_atomic(out, data)
    typer.echo(f"wrote {out}: {kind.value}, {len(timetable.events)} events, {len(data)} bytes")


def register(app: typer.Typer) -> None:
    app.add_typer(samples_app, name="samples", help="Generate synthetic UP timetable PDFs.")
