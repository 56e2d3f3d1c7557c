"""Backup sets are private to the user running schedgen: files 0600, directories 0700, whatever the umask.

A set holds every job's data (and with --include-secrets the project's secrets); the umask of a cron
job or a container is not a permission model.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from schedgen_ops.ops.backup.manifest import DIR_MODE, FILE_MODE


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) or tighten it to 0700 when this user owns it; return it."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o777 != DIR_MODE and info.st_uid == os.geteuid():
        with contextlib.suppress(PermissionError):  # e.g. a mount point: the set directories still are
            os.chmod(path, DIR_MODE)
    return path


def seal(directory: Path) -> None:
    """Give every directory under ``directory`` (itself included) 0700 and every file 0600."""
    os.chmod(directory, DIR_MODE)
    for root, dirs, files in os.walk(directory):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, DIR_MODE)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, FILE_MODE)
