"""What a student reads when an upload fails: one plain sentence per stable error code.

Keyed by the service's codes (parsing/errors.py, docs/API.md) so a new wording never needs a new code.
``{title}`` is replaced in the browser by the title the parser found (from the job's error message).
"""

from __future__ import annotations

from typing import Final

MESSAGES: Final[dict[str, str]] = {
    "not_a_timetable": "This is not a UP timetable (found the title “{title}”). Upload the Lectures, "
    "Semester Tests or Exams timetable PDF from the UP portal.",
    "file_too_large": "This file is too large ({size}; the limit is {limit}). A UP timetable is a few "
    "kilobytes: upload the timetable PDF itself.",
    "too_many_pages": "This PDF has too many pages for a UP timetable (the limit is {pages}). Upload "
    "one timetable at a time.",
    "not_a_pdf": "This is not a PDF. Upload the timetable PDF itself, not a screenshot, spreadsheet or "
    "web page.",
    "empty_file": "This file is empty. Download the timetable PDF from the UP portal again.",
    "corrupt_pdf": "This PDF is damaged and cannot be read. Download the timetable again.",
    "encrypted_pdf": "This PDF is password-protected. Download an unprotected copy of the timetable.",
    "image_only_pdf": "This PDF has no text (it was scanned or printed to an image). Download the "
    "original timetable PDF.",
    "columns_mismatch": "This timetable's table is laid out differently from the UP format we know. "
    "Please report it with the file.",
    "parse_timeout": "This file is unusually complex and could not be read in time. Upload the "
    "timetable PDF from the UP portal.",
    "parse_limit_exceeded": "This file is far larger inside than a UP timetable. Upload the timetable PDF "
    "from the UP portal.",
    "rate_limited": "Too many uploads at once. Wait a minute and try again.",
    "parser_unavailable": "Uploads cannot be checked right now. Try again in a minute.",
    "database_unavailable": "The service is busy or restarting. Try again in a minute.",
    "storage_unavailable": "The service is busy or restarting. Try again in a minute.",
    "processing_error": "Something went wrong while reading this timetable. Try again later.",
    "job_not_found": "This upload is no longer kept. Upload the file again.",
    "too_many_files": "One calendar takes at most {files} timetables: choose fewer files (or reload the "
    "page to start again).",
    "network": "The service cannot be reached. Check your connection and try again.",
    "failed": "This file could not be read. Try again, or upload the timetable PDF from the UP portal.",
}
