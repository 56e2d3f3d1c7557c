"""Fixtures for service tests: `service_stack` starts real api/worker processes (see stackkit).

`service_stack` (function-scoped factory) runs them against a fresh database (``database_url``), a
flushed Redis db (``redis_url``) and a file:// upload dir; extra ``SCHEDGEN_*`` env per test.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stackkit import Stack, service_env

from schedgen_ops.runtime.dataservices import free_port


@pytest.fixture
def service_stack(database_url: str, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Factory: ``stack = service_stack(workers=1, **{"SCHEDGEN_X": "..."})`` (api always started)."""
    stacks: list[Stack] = []

    def _make(workers: int = 0, api_workers: int = 1, **extra: str) -> Stack:
        stack = Stack(service_env(database_url, redis_url, tmp_path, **extra), tmp_path, free_port())
        stacks.append(stack)
        stack.start_api(api_workers)
        if workers:
            stack.start_worker(workers)
        return stack

    yield _make
    for stack in stacks:
        stack.stop()
    shutil.rmtree(tmp_path / "uploads", ignore_errors=True)


@pytest.fixture(scope="session")
def synthetic_pdfs() -> dict[str, bytes]:
    """Small synthetic UP-format PDFs of each kind (the parser's generator)."""
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    return {
        kind: render_pdf(generate_timetable(kind, seed=7, n_rows=6))  # type: ignore[arg-type]
        for kind in ("lectures", "tests", "exams")
    }
