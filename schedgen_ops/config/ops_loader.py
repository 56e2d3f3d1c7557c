"""Loading a project's configuration in an ops command (health, backup, loadtest) run beside the service.

On-call and cron set the service's secret variables (SCHEDGEN_DATABASE_URL, SCHEDGEN_REDIS_URL, ...) for
these commands, but `load_config` refuses secrets that do not come from the secrets file (its nested
ServiceSettings reads the environment). The commands read those URLs from the environment themselves and
need only the rest of the configuration, so the loader runs with them hidden.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from schedgen_ops.config.loader import load_config
from schedgen_ops.config.model import SECRET_SERVICE_FIELDS, Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ENV_PREFIX


def secret_env_names() -> set[str]:
    """``SCHEDGEN_*`` names of the service's secret settings (URLs with passwords, tokens)."""
    return {ENV_PREFIX + field.upper() for field in SECRET_SERVICE_FIELDS}


@contextlib.contextmanager
def without_secret_env() -> Iterator[None]:
    """Hide the service's secret variables for the duration of the block (then put them back).

    Mutates ``os.environ``: run it before any thread that reads the environment starts.
    """
    saved = {name: os.environ.pop(name) for name in secret_env_names() if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def load_ops_config(project_dir: Path) -> Config:
    """`load_config` of ``project_dir`` with the service's secret variables hidden; errors raise."""
    with without_secret_env():
        return load_config(project_dir)


def try_load_config(project_dir: Path, warnings: list[str] | None = None) -> Config | None:
    """The project's validated `Config`, or None (reason appended to ``warnings``) when it does not load.

    On-call must be able to run health with a broken or missing configuration, so this never raises.
    """
    try:
        return load_ops_config(project_dir)
    except (SchedgenError, ImportError, OSError) as exc:
        if warnings is not None:
            reason = exc.one_line() if isinstance(exc, SchedgenError) else str(exc)
            warnings.append(f"configuration not loaded, using built-in defaults: {reason}")
        return None
