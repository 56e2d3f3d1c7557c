"""`schedgen parse` and `schedgen samples` end to end through the CLI entry point."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from icalendar import Calendar

from schedgen_ops.cli.main import main
from schedgen_ops.parsing import parse_pdf
from schedgen_ops.parsing.export import load_schema
from schedgen_ops.parsing.semesters import DEFAULT_SEMESTERS

REAL = ("UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf")


@pytest.fixture
def real_paths(up_pdf):
    return [str(up_pdf(n)) for n in REAL]


def test_three_files_merge_into_one_calendar(real_paths, tmp_path, capsys):
    out = tmp_path / "me.ics"
    rc = main(["parse", *real_paths, "--format", "ics", "-o", str(out), "--semester", "S2"])
    assert rc == 0, capsys.readouterr().err
    cal = Calendar.from_ical(out.read_bytes())
    summaries = [str(e["SUMMARY"]) for e in cal.walk("VEVENT")]
    assert len(summaries) == 30 + 12 + 5
    assert {"COS 214 L1", "STK 220 PTest2", "COS 284 Exam (paper 1)"} <= set(summaries)
    first = next(e for e in cal.walk("VEVENT") if str(e["SUMMARY"]) == "COS 214 L1")
    s2 = DEFAULT_SEMESTERS["S2"]
    assert first["DTSTART"].dt.date() >= s2.start and first["DTSTART"].dt.date() - s2.start < dt.timedelta(7)
    assert "wrote" in capsys.readouterr().err
    assert out.stat().st_mode & 0o044  # usual permissions, not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["me.ics"]


def test_group_filter_and_explicit_dates(real_paths, tmp_path, capsys):
    out = tmp_path / "cos214.ics"
    args = [
        "parse",
        real_paths[0],
        "-f",
        "ics",
        "-o",
        str(out),
        "--from",
        "2026-07-20",
        "--until",
        "2026-07-31",
    ]
    assert main([*args, "--group", "COS 214=P01", "--group", "COS 226=G01"]) == 0
    events = Calendar.from_ical(out.read_bytes()).walk("VEVENT")
    descs = {(str(e["SUMMARY"]), str(e["DESCRIPTION"]).split("group ")[1][:3]) for e in events}
    assert {g for s, g in descs if s.startswith("COS 214")} == {"P01"}
    assert {g for s, g in descs if s.startswith("COS 226")} == {"G01"}


def test_json_stdout_matches_schema(real_paths, capsys):
    assert main(["parse", *real_paths, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    assert [len(t["events"]) for t in doc["timetables"]] == [46, 12, 5]


def test_csv_and_table(real_paths, capsys):
    assert main(["parse", real_paths[1], "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 13 and lines[0].startswith("kind,module,activity")
    assert main(["parse", real_paths[2]]) == 0
    table = capsys.readouterr().out
    assert "WTW 285" in table and "Eng III - 7" in table


def test_exam_duration(real_paths, tmp_path):
    out = tmp_path / "exams.ics"
    assert main(["parse", real_paths[2], "-f", "ics", "-o", str(out), "--exam-duration", "120"]) == 0
    ev = next(iter(Calendar.from_ical(out.read_bytes()).walk("VEVENT")))
    assert ev["DTEND"].dt - ev["DTSTART"].dt == dt.timedelta(minutes=120)
    assert "estimate" in str(ev["DESCRIPTION"])


def test_lectures_ics_without_dates_is_a_usage_error(real_paths, tmp_path, capsys):
    out = tmp_path / "x.ics"
    assert main(["parse", real_paths[0], "-f", "ics", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--from" in err and "--semester" in err
    assert not out.exists()


def test_semester_dates_come_from_the_project_config(real_paths, tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "schedgen.yaml").write_text("semesters:\n  S2: {start: '2026-08-03', end: '2026-08-14'}\n")
    out = tmp_path / "o.ics"
    assert (
        main(["-P", str(project), "parse", real_paths[0], "-f", "ics", "-o", str(out), "--semester", "S2"])
        == 0
    )
    text = out.read_text()
    assert "DTSTART;TZID=Africa/Johannesburg:20260803T083000" in text  # COS 214 L1, Monday 3 Aug
    assert "UNTIL=20260814T215959Z" in text


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    """The parser tests' bad-input corpus (loaded by path: tests/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        "bad_inputs_corpus", Path(__file__).parent / "parsing" / "test_parse_bad_inputs.py"
    )
    assert spec is not None and spec.loader is not None
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    files = {}
    for i, (code, source) in enumerate(corpus.BAD_INPUTS.values()):
        path = tmp_path / f"bad{i}-{code}.pdf"
        path.write_bytes(corpus._bytes(source))
        files[code] = path
    return files


def test_bad_inputs_give_one_line_errors_and_no_output(tmp_path, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    keep = out_dir / "keep.ics"
    keep.write_text("previous calendar")
    seen = set()
    for code, path in _bad_files(tmp_path).items():
        for target in (out_dir / f"{code}.ics", keep):
            rc = main(["parse", str(path), "-f", "ics", "-o", str(target), "--semester", "S1"])
            err = capsys.readouterr().err
            assert rc == 1, (code, err)
            assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
            assert str(path) in err
            seen.add(code)
    assert sorted(p.name for p in out_dir.iterdir()) == ["keep.ics"]  # no partial or temp files
    assert keep.read_text() == "previous calendar"
    assert seen == {
        "empty_file",
        "not_a_pdf",
        "corrupt_pdf",
        "encrypted_pdf",
        "too_many_pages",
        "file_too_large",
        "image_only_pdf",
        "not_a_timetable",
        "columns_mismatch",
    }  # fmt: skip  (parse_timeout: tests/parsing/test_parse_bad_inputs.py)


def test_one_bad_file_among_good_ones_writes_nothing(real_paths, tmp_path, capsys):
    bad = tmp_path / "empty.pdf"
    bad.write_bytes(b"")
    out = tmp_path / "all.ics"
    assert main(["parse", *real_paths, str(bad), "-f", "ics", "-o", str(out), "--semester", "S2"]) == 1
    assert not out.exists()


def test_usage_errors_exit_2(real_paths, tmp_path, capsys):
    assert main(["parse", str(tmp_path / "missing.pdf")]) == 2
    assert main(["parse", real_paths[0], "--from", "2026-13-01", "-f", "ics"]) == 2
    assert main(["parse", real_paths[0], "--group", "COS 214", "-f", "ics", "--semester", "S2"]) == 2
    assert main(["parse", real_paths[0], "--format", "pdf"]) == 2


@pytest.mark.parametrize("kind", ["lectures", "tests", "exams"])
def test_samples_generate(kind, tmp_path, capsys):
    out = tmp_path / f"{kind}.pdf"
    rc = main(
        ["samples", "generate", str(out), "--kind", kind, "--pages", "2", "--seed", "5", "--semester", "S1"]
    )
    assert rc == 0
    tt = parse_pdf(out)
    assert tt.kind == kind and tt.source is not None and tt.source.pages == 2 and tt.events
    again = tmp_path / "again.pdf"
    assert (
        main(
            [
                "samples",
                "generate",
                str(again),
                "--kind",
                kind,
                "--pages",
                "2",
                "--seed",
                "5",
                "--semester",
                "S1",
            ]
        )
        == 0
    )
    assert parse_pdf(again).events == tt.events


def test_real_process_exit_codes(tmp_path):
    """The installed entry point: success, a one-line error for bad input, no traceback."""
    sample = tmp_path / "s.pdf"
    run = [sys.executable, "-m", "schedgen_ops.cli.main"]
    ok = subprocess.run(
        [*run, "samples", "generate", str(sample), "--kind", "tests"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    ics = subprocess.run([*run, "parse", str(sample), "-f", "ics"], capture_output=True)
    assert ics.returncode == 0 and ics.stdout.startswith(b"BEGIN:VCALENDAR")
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"not a pdf")
    res = subprocess.run([*run, "parse", str(bad)], capture_output=True, text=True)
    assert res.returncode == 1 and res.stderr.startswith("error: ") and "Traceback" not in res.stderr
