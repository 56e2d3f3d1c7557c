"""The parser's error codes: one stable, documented code per kind of bad input.

The API maps each code to an HTTP status with `ERROR_HTTP_STATUS`; the CLI prints the message. Codes are
part of the public contract (docs/PARSING.md): never rename one, only add.
"""

from __future__ import annotations

from typing import Final

from schedgen_ops.errors import SchedgenError

ERROR_HTTP_STATUS: Final[dict[str, int]] = {
    "empty_file": 422,
    "not_a_pdf": 415,
    "corrupt_pdf": 422,
    "encrypted_pdf": 422,
    "too_many_pages": 422,
    "file_too_large": 413,
    "image_only_pdf": 422,
    "not_a_timetable": 422,
    "columns_mismatch": 422,
    # The limit is a property of the input, not a transient server fault: retrying the same file fails
    # the same way, so it is a client error (422), not a gateway timeout (504).
    "parse_timeout": 422,
    # A cap of docs/PARSING.md "Limits" (decoded bytes, operations, page tree, nesting, memory): also a
    # property of the file, so final and 422.
    "parse_limit_exceeded": 422,
}

ERROR_CODES: Final[frozenset[str]] = frozenset(ERROR_HTTP_STATUS)

_HINTS: Final[dict[str, str]] = {
    "empty_file": "upload the timetable PDF downloaded from the UP portal",
    "not_a_pdf": "upload the PDF itself, not a screenshot, spreadsheet or web page",
    "corrupt_pdf": "download the timetable again; the file is damaged or incomplete",
    "encrypted_pdf": "download an unprotected copy of the timetable",
    "too_many_pages": "split the file or upload one timetable at a time",
    "file_too_large": "UP timetables are a few kilobytes; upload the timetable PDF itself",
    "image_only_pdf": "the PDF has no text (scanned or printed to image); download the original PDF",
    "not_a_timetable": "upload a UP Lectures, Semester Tests or Exams timetable PDF",
    "columns_mismatch": "the table layout is not the UP format this parser knows; report it with the file",
    "parse_timeout": "the file is unusually complex; upload the timetable PDF from the UP portal",
    "parse_limit_exceeded": "UP timetables are small and simple; upload the timetable PDF from the UP portal",
}


class ParseError(SchedgenError):
    """A PDF the parser cannot turn into a timetable; ``code`` is one of `ERROR_CODES`."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_HTTP_STATUS:
            raise ValueError(f"unknown parse error code {code!r}")
        super().__init__(message, code=code, hint=_HINTS[code])

    @property
    def http_status(self) -> int:
        """The HTTP status the API answers with for this error."""
        return ERROR_HTTP_STATUS[self.code]
