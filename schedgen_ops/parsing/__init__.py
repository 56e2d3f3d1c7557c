"""UP timetable PDF -> typed events, JSON/CSV/ICS output and synthetic UP-format PDFs.

Public API (stable; other modules and the service call these names):
`parse_pdf`, `quick_check`, `ParseError`, `ERROR_HTTP_STATUS`, `ERROR_CODES`, `Limits`, `Timetable` and its
event models. Names are loaded on first use (PEP 562), so importing a light submodule such as
``schedgen_ops.parsing.semesters`` (the configuration does) does not load pdfminer, and neither does
``import schedgen_ops.parsing`` itself: code that wants the parser loaded ahead of use imports
``schedgen_ops.parsing.api`` (or starts a `parsing.sandbox.Sandbox`, which loads it in its child).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from schedgen_ops.parsing.api import MAX_BYTES, MAX_PAGES, TIMEOUT_S, parse_pdf, quick_check
    from schedgen_ops.parsing.errors import ERROR_CODES, ERROR_HTTP_STATUS, ParseError
    from schedgen_ops.parsing.limits import Limits
    from schedgen_ops.parsing.model import ExamSitting, LectureEvent, SourceInfo, TestSitting, Timetable

_EXPORTS: dict[str, str] = {
    "MAX_BYTES": "api",
    "MAX_PAGES": "api",
    "TIMEOUT_S": "api",
    "parse_pdf": "api",
    "quick_check": "api",
    "ERROR_CODES": "errors",
    "ERROR_HTTP_STATUS": "errors",
    "ParseError": "errors",
    "Limits": "limits",
    "ExamSitting": "model",
    "LectureEvent": "model",
    "SourceInfo": "model",
    "TestSitting": "model",
    "Timetable": "model",
}

__all__ = [
    "ERROR_CODES",
    "ERROR_HTTP_STATUS",
    "MAX_BYTES",
    "MAX_PAGES",
    "TIMEOUT_S",
    "ExamSitting",
    "LectureEvent",
    "Limits",
    "ParseError",
    "SourceInfo",
    "TestSitting",
    "Timetable",
    "parse_pdf",
    "quick_check",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
