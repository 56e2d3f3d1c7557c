"""Choose the prometheus_client multiprocess directory before prometheus_client is first imported.

prometheus_client decides at import time whether metrics are per-process files; every service command
calls `prepare` first, and child processes (uvicorn workers, RQ workers) inherit the environment.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare(configured: str, *, component: str) -> Path:
    """Use ``configured`` (shared by processes, kept as is) or a fresh private dir for this process tree."""
    if configured:
        path = Path(configured)
        path.mkdir(parents=True, exist_ok=True)
    else:
        path = Path(tempfile.mkdtemp(prefix=f"schedgen-metrics-{component}-"))
        atexit.register(shutil.rmtree, path, True)  # private to this process tree: remove on exit
    os.environ[ENV] = str(path)
    return path
