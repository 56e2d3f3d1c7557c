"""Where ``--live`` looks when no ``--url`` is given: the local runtime's active deployment.

The local runtime (supervisord) knows the api port, the ledger/queue URLs and the rendered tree it runs;
the checklist reuses them so `schedgen checklist --live` needs no flags after `schedgen deploy`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.errors import SchedgenError

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class LocalDeployment:
    url: str
    tree: Path | None = None
    database_url: str | None = None
    redis_url: str | None = None


def local_deployment(project: Path) -> LocalDeployment:
    """The active local deployment's api URL, data URLs and tree; the default URL when none is active."""
    from schedgen_ops.runtime.local import LocalRuntime

    runtime = LocalRuntime(project)
    tree = runtime.active_tree()
    if tree is None:
        return LocalDeployment(DEFAULT_URL)
    urls: dict[str, str] = {}
    values: dict[str, str] = {}
    with contextlib.suppress(SchedgenError, OSError, KeyError, ValueError):
        urls = runtime.api_urls(tree)
    with contextlib.suppress(SchedgenError, OSError, KeyError, ValueError):
        values = runtime.secrets(tree)
    url = next(iter(urls.values()), DEFAULT_URL)
    return LocalDeployment(url, tree, values.get("SCHEDGEN_DATABASE_URL"), values.get("SCHEDGEN_REDIS_URL"))
