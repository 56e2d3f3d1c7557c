"""Shared test fixtures: access to ../shared data with the skip/require policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("SCHEDGEN_SHARED_DIR", REPO_ROOT.parent / "shared"))
UP_PDFS = SHARED_DIR / "fixtures" / "up-pdfs"


def shared_path(*parts: str) -> Path:
    """Path to a file under ../shared; skip when absent, fail when SCHEDGEN_REQUIRE_SHARED=1."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        reason = f"shared test data {path} is absent (clone the project beside its shared/ directory)"
        if os.environ.get("SCHEDGEN_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; SCHEDGEN_REQUIRE_SHARED=1 requires it")
        pytest.skip(reason)
    return path


@pytest.fixture
def up_pdf():
    """Return a function mapping a real UP PDF's name (e.g. "UP_MOD_XLS.pdf") to its path."""
    return lambda name: shared_path("fixtures", "up-pdfs", name)
