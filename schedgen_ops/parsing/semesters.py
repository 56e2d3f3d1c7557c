"""UP semester dates: the one place the defaults live, and how overrides replace them.

The defaults are for the 2026 UP academic year. They are plausible dates (first-semester lectures from
mid-February to early June, second-semester lectures from late July to late October, as in earlier UP
year calendars), NOT copied from the official 2026 calendar: check them against the UP year plan and
override them in schedgen.yaml (``semesters:``), which the configuration passes to `resolve_semester`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from schedgen_ops.errors import SchedgenError

DEFAULT_YEAR = 2026


class SemesterDates(BaseModel):
    """First and last day of lectures (both inclusive)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> SemesterDates:
        if self.end < self.start:
            raise ValueError(f"semester ends ({self.end}) before it starts ({self.start})")
        return self


DEFAULT_SEMESTERS: dict[str, SemesterDates] = {
    "S1": SemesterDates(start=dt.date(2026, 2, 9), end=dt.date(2026, 6, 5)),
    "S2": SemesterDates(start=dt.date(2026, 7, 20), end=dt.date(2026, 10, 23)),
}

SEMESTER_NAMES = ("S1", "S2", "Y")


def resolve_semester(
    name: str, overrides: Mapping[str, SemesterDates | Mapping[str, Any]] | None = None
) -> SemesterDates:
    """Dates for "S1", "S2" or "Y" (whole year: S1's start to S2's end), overrides taking precedence."""
    key = name.strip().upper()
    table: dict[str, SemesterDates] = dict(DEFAULT_SEMESTERS)
    for k, v in (overrides or {}).items():
        table[k.strip().upper()] = v if isinstance(v, SemesterDates) else SemesterDates.model_validate(v)
    if key in table:
        return table[key]
    if key == "Y":
        return SemesterDates(start=table["S1"].start, end=table["S2"].end)
    raise SchedgenError(
        f"unknown semester {name!r}",
        code="unknown_semester",
        hint=f"use one of {', '.join(SEMESTER_NAMES)}",
        exit_code=2,
    )


# Which "offered" values run in which semester: a module offered in the other semester is dropped
# from a calendar built for one semester.
_OFFERED_IN: dict[str, frozenset[str]] = {
    "S1": frozenset({"S1", "Q1", "Q2"}),
    "S2": frozenset({"S2", "Q3", "Q4"}),
}


def offered_in(offered: str, semester: str) -> bool:
    """Whether a module offered as ``offered`` has classes in ``semester`` (unknown values: yes)."""
    semester = semester.strip().upper()
    offered = offered.strip().upper()
    if semester not in _OFFERED_IN:
        return True
    other = "S2" if semester == "S1" else "S1"
    return offered not in _OFFERED_IN[other]
