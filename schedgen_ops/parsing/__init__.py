"""UP timetable PDF -> typed events, JSON/CSV/ICS output and synthetic UP-format PDFs.

Public API (stable; other modules and the service call these names):
`parse_pdf`, `quick_check`, `ParseError`, `ERROR_HTTP_STATUS`, `Timetable` and its event models.
"""

from schedgen_ops.parsing.api import MAX_BYTES, MAX_PAGES, TIMEOUT_S, parse_pdf, quick_check
from schedgen_ops.parsing.errors import ERROR_CODES, ERROR_HTTP_STATUS, ParseError
from schedgen_ops.parsing.model import (
    ExamSitting,
    LectureEvent,
    SourceInfo,
    TestSitting,
    Timetable,
)

__all__ = [
    "ERROR_CODES",
    "ERROR_HTTP_STATUS",
    "MAX_BYTES",
    "MAX_PAGES",
    "TIMEOUT_S",
    "ExamSitting",
    "LectureEvent",
    "ParseError",
    "SourceInfo",
    "TestSitting",
    "Timetable",
    "parse_pdf",
    "quick_check",
]
