"""JSON (validated against the committed JSON Schema), CSV, semesters and error-code table."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json

import jsonschema
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.parsing import ERROR_CODES, ERROR_HTTP_STATUS, ParseError, parse_pdf
from schedgen_ops.parsing.export import SCHEMA_PATH, json_schema, load_schema, to_csv, to_json
from schedgen_ops.parsing.semesters import DEFAULT_SEMESTERS, SemesterDates, offered_in, resolve_semester
from schedgen_ops.parsing.synthetic import generate_timetable


@pytest.fixture
def real(up_pdf):
    return [parse_pdf(up_pdf(n)) for n in ("UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf")]


def test_committed_schema_matches_the_model():
    assert load_schema() == json.loads(json.dumps(json_schema())), (
        f"{SCHEMA_PATH.name} is stale: regenerate it with python -m schedgen_ops.parsing.export"
    )


def test_json_output_validates_against_schema(real):
    doc = to_json([*real, generate_timetable("exams", seed=1, n_rows=3)])
    jsonschema.Draft202012Validator(load_schema()).validate(doc)
    assert doc["schema_version"] == 1
    lec = doc["timetables"][0]
    assert lec["kind"] == "lectures" and len(lec["events"]) == 46
    assert lec["events"][0] == {
        "type": "lecture",
        "module": "COS 214",
        "activity": "L1",
        "activity_kind": "lecture",
        "group": "G01",
        "language": "E",
        "offered": "S2",
        "weekday": "Monday",
        "start": "08:30:00",
        "end": "09:20:00",
        "venue": "Centenary 6",
        "campus": "HATFIELD",
        "study_programme": "",
    }
    assert doc["timetables"][2]["events"][0]["end"] is None


def test_schema_rejects_a_wrong_document(real):
    doc = to_json(real[1:2])
    doc["timetables"][0]["events"][0]["date"] = 5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(load_schema()).validate(doc)


def test_csv_one_row_per_event(real):
    rows = list(csv.DictReader(io.StringIO(to_csv(real))))
    assert len(rows) == 46 + 12 + 5
    ptest2 = next(r for r in rows if r["module"] == "STK 220" and r["activity"] == "PTest2")
    assert ptest2["date"] == "2025-10-15" and ptest2["weekday"] == "Wednesday"
    assert len(ptest2["venue"].split("; ")) == 13
    assert rows[-1]["activity"] == "Exam Written (paper 1)" and rows[-1]["end"] == ""


def test_semester_defaults_and_overrides():
    assert resolve_semester("s1") == DEFAULT_SEMESTERS["S1"]
    year = resolve_semester("Y")
    assert (year.start, year.end) == (DEFAULT_SEMESTERS["S1"].start, DEFAULT_SEMESTERS["S2"].end)
    custom = resolve_semester("S2", {"S2": {"start": "2026-07-27", "end": "2026-10-30"}})
    assert custom == SemesterDates(start=dt.date(2026, 7, 27), end=dt.date(2026, 10, 30))
    assert resolve_semester("Y", {"S2": custom}).end == dt.date(2026, 10, 30)
    with pytest.raises(SchedgenError) as info:
        resolve_semester("S3")
    assert info.value.exit_code == 2
    with pytest.raises(ValueError):
        SemesterDates(start=dt.date(2026, 5, 1), end=dt.date(2026, 4, 1))
    assert offered_in("S2", "S2") and offered_in("Y", "S1") and not offered_in("Q3", "S1")


def test_error_codes_are_the_documented_set():
    assert {
        "empty_file", "not_a_pdf", "corrupt_pdf", "encrypted_pdf", "too_many_pages", "file_too_large",
        "image_only_pdf", "not_a_timetable", "columns_mismatch", "parse_timeout", "parse_limit_exceeded",
    } == ERROR_CODES  # fmt: skip
    assert ERROR_HTTP_STATUS["file_too_large"] == 413 and ERROR_HTTP_STATUS["not_a_pdf"] == 415
    assert {ERROR_HTTP_STATUS[c] for c in ERROR_CODES - {"file_too_large", "not_a_pdf"}} == {422}
    err = ParseError("not_a_pdf", "x")
    assert isinstance(err, SchedgenError) and err.http_status == 415 and err.hint
    with pytest.raises(ValueError):
        ParseError("nope", "x")


def test_package_exports_load_lazily():
    """The configuration imports parsing.semesters; that must not load pdfminer (startup RSS)."""
    import subprocess
    import sys

    import schedgen_ops.parsing as parsing

    code = "import sys, schedgen_ops.parsing.semesters; print('pdfminer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert set(parsing.__all__) == set(parsing._EXPORTS)
    assert all(getattr(parsing, name) is not None for name in parsing.__all__)
    with pytest.raises(AttributeError):
        _ = parsing.no_such_name
