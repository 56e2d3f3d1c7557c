"""Locate the data directories (templates/, profiles/, loadtests/) in a wheel or a source checkout.

In a built wheel they are packaged under ``schedgen_ops/_data``; in a source checkout or editable
install they live at the repository's top level, next to the package.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the directory for ``name`` ("templates", "profiles" or "loadtests")."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"schedgen data directory {name!r} is missing from this installation")


def data_file(name: str) -> Path:
    """Return a shipped file such as "container/Dockerfile" or "constraints.txt" (wheel or checkout)."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"schedgen data file {name!r} is missing from this installation")
