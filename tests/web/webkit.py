"""Helpers shared by the page's test modules (imported like tests/service/stackkit)."""

from __future__ import annotations

from stackkit import Stack


def ensure_worker(stack: Stack) -> None:
    """Start one worker process for the stack unless one runs."""
    if not any("worker" in p.argv and p.popen is not None and p.popen.poll() is None for p in stack.procs):
        stack.start_worker(1)
