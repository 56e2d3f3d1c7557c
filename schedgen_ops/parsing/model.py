"""The typed model of a parsed UP timetable: one `Timetable` per PDF, holding events of one kind."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["lectures", "tests", "exams"]
ActivityKind = Literal["lecture", "practical", "tutorial", "other"]
Weekday = Literal["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

WEEKDAYS: tuple[Weekday, ...] = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)

_ACTIVITY_KINDS: dict[str, ActivityKind] = {"L": "lecture", "P": "practical", "T": "tutorial"}


def activity_kind(code: str) -> ActivityKind:
    """Map an activity code's letter ("L1", "P2", "T1") to its kind."""
    return _ACTIVITY_KINDS.get(code[:1].upper(), "other")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LectureEvent(_Frozen):
    """One weekly class line of a lectures timetable (one venue; practicals repeat the slot per lab)."""

    type: Literal["lecture"] = "lecture"
    module: str = Field(description='Module code, e.g. "COS 214".')
    activity: str = Field(description='Activity code, e.g. "L1", "P2", "T1".')
    activity_kind: ActivityKind
    group: str = Field(description='Group, e.g. "G01", "P01".')
    language: str = Field(description='Language code, e.g. "E" (English) or "A" (Afrikaans).')
    offered: str = Field(description='When the module is offered: "S1", "S2", "Y", "Q1".."Q4", ...')
    weekday: Weekday
    start: dt.time
    end: dt.time
    venue: str
    campus: str
    study_programme: str = ""


class TestSitting(_Frozen):
    """One semester-test sitting: all its venues at one date and time."""

    __test__: ClassVar[bool] = False  # not a pytest test class despite the name

    type: Literal["test"] = "test"
    module: str
    test: str = Field(description='Test name with the PDF\'s line wrap removed, e.g. "PTest1".')
    date: dt.date
    start: dt.time
    end: dt.time
    campus: str
    venues: list[str]


class ExamSitting(_Frozen):
    """One exam sitting; the PDF gives only a start time, so ``end`` is usually absent."""

    type: Literal["exam"] = "exam"
    status: str = Field(description='e.g. "FINAL".')
    module: str
    paper: str
    activity: str = Field(description='e.g. "Exam Written".')
    date: dt.date
    start: dt.time
    end: dt.time | None = None
    module_campus: str
    exam_campus: str
    venue: str
    comments: str = ""


Event = Annotated[LectureEvent | TestSitting | ExamSitting, Field(discriminator="type")]


class SourceInfo(_Frozen):
    """Where a timetable came from."""

    filename: str | None = None
    sha256: str
    size_bytes: int
    pages: int
    title: str


class Timetable(_Frozen):
    """A parsed UP timetable PDF: its kind, events in document order, and non-fatal warnings."""

    kind: Kind
    events: list[Event]
    warnings: list[str] = Field(default_factory=list)
    source: SourceInfo | None = None
