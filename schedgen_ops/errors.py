"""The one exception type for expected failures.

Every failure a user can cause or fix (bad input, missing binary, misconfiguration) is raised as a
`SchedgenError`; the CLI catches it at the top and prints a one-line ``error: ...`` with the fix.
Anything else is a bug and shows its traceback (with ``--debug``).
"""

from __future__ import annotations


class SchedgenError(Exception):
    """An expected failure with a message that says how to fix it.

    ``code`` is a stable, documented machine-readable identifier (e.g. ``not_a_pdf``) that the API
    reuses; ``exit_code`` is what the CLI exits with.
    """

    def __init__(self, message: str, *, code: str = "error", hint: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.exit_code = exit_code

    def one_line(self) -> str:
        """The message and its fix on one line."""
        return f"{self.message} ({self.hint})" if self.hint else self.message
