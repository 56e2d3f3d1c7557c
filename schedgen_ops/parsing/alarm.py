"""A hard stop for a parse on the main thread: SIGALRM raises `parse_timeout` wherever the parse is.

The cooperative deadline (`limits.Deadline`) is checked between pdfminer's steps; a single pdfminer call
that never returns to us (a crafted font table, a quadratic tokenizer path) is out of its reach. On the
main thread a signal handler is not: Python runs it between bytecodes of whatever loop is spinning. It is
used by the CLI and by the sandbox child, which parse on their main thread; threads (the api's pool) and
callers that own SIGALRM themselves (RQ's job timeout) keep only the cooperative deadline, and the
service never parses in those processes anyway (`parsing.sandbox`).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from schedgen_ops.parsing.limits import Budget

GRACE_S = 0.5  # after the cooperative deadline, which should normally fire first


def _usable() -> bool:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return False
    if signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, None):
        return False  # someone else's alarm (RQ's job timeout, pytest-timeout): leave it alone
    return signal.getitimer(signal.ITIMER_REAL)[0] == 0


@contextmanager
def hard_deadline(budget: Budget) -> Iterator[None]:
    """Raise ``budget``'s `parse_timeout` by signal at its deadline + `GRACE_S`, when that is possible."""
    if not _usable():
        yield
        return
    armed = [True]

    def _fire(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            armed[0] = False
            budget.deadline.at = 0.0  # make the cooperative check agree, whatever catches this
            budget.check_time()

    previous = signal.signal(signal.SIGALRM, _fire)
    signal.setitimer(signal.ITIMER_REAL, max(0.01, budget.deadline.at - time.monotonic() + GRACE_S))
    try:
        yield
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
