"""JSON (versioned schema) and CSV views of parsed timetables."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schedgen_ops import __version__
from schedgen_ops.parsing.model import ExamSitting, LectureEvent, TestSitting, Timetable

SCHEMA_VERSION: Literal[1] = 1
SCHEMA_PATH = Path(__file__).with_name("timetable.schema.json")


class TimetableDocument(BaseModel):
    """The JSON document `schedgen parse --format json` prints and the API returns."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1]
    generator: str
    timetables: list[Timetable]


def json_schema() -> dict[str, Any]:
    """The JSON Schema of `TimetableDocument` (committed as timetable.schema.json)."""
    schema = TimetableDocument.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://schedgen.example/schemas/timetable-v{SCHEMA_VERSION}.json"
    return schema


def load_schema() -> dict[str, Any]:
    return dict(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def to_json(timetables: Iterable[Timetable]) -> dict[str, Any]:
    """A JSON-ready dict: ``{"schema_version": 1, "generator": ..., "timetables": [...]}``."""
    doc = TimetableDocument(
        schema_version=SCHEMA_VERSION, generator=f"schedgen {__version__}", timetables=list(timetables)
    )
    return doc.model_dump(mode="json")


CSV_COLUMNS = (
    "kind",
    "module",
    "activity",
    "group",
    "activity_kind",
    "language",
    "offered",
    "weekday",
    "date",
    "start",
    "end",
    "venue",
    "campus",
    "status",
    "comments",
    "source",
)


def _row(tt: Timetable, ev: LectureEvent | TestSitting | ExamSitting) -> dict[str, str]:
    src = (tt.source.filename or "") if tt.source else ""
    base = dict.fromkeys(CSV_COLUMNS, "")
    base.update(kind=tt.kind, module=ev.module, start=ev.start.strftime("%H:%M"), source=src)
    if isinstance(ev, LectureEvent):
        base.update(
            activity=ev.activity,
            group=ev.group,
            activity_kind=ev.activity_kind,
            language=ev.language,
            offered=ev.offered,
            weekday=ev.weekday,
            end=ev.end.strftime("%H:%M"),
            venue=ev.venue,
            campus=ev.campus,
        )
    elif isinstance(ev, TestSitting):
        base.update(
            activity=ev.test,
            date=ev.date.isoformat(),
            weekday=ev.date.strftime("%A"),
            end=ev.end.strftime("%H:%M"),
            venue="; ".join(ev.venues),
            campus=ev.campus,
        )
    else:
        base.update(
            activity=f"{ev.activity} (paper {ev.paper})",
            date=ev.date.isoformat(),
            weekday=ev.date.strftime("%A"),
            end=ev.end.strftime("%H:%M") if ev.end else "",
            venue=ev.venue,
            campus=ev.exam_campus,
            status=ev.status,
            comments=ev.comments,
        )
    return base


def to_csv(timetables: Iterable[Timetable]) -> str:
    """One CSV row per event; a test's venues are joined with "; "."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for tt in timetables:
        for ev in tt.events:
            writer.writerow(_row(tt, ev))
    return out.getvalue()


def write_schema() -> Path:
    """Regenerate timetable.schema.json from the models: ``python -m schedgen_ops.parsing.export``."""
    SCHEMA_PATH.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return SCHEMA_PATH


if __name__ == "__main__":
    print(write_schema())
