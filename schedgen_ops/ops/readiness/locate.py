"""Where ``--live`` looks when no ``--url`` is given: the local runtime's active deployment.

The local runtime answers for itself (`LocalRuntime.endpoints`): the front door's address, the
service's own ledger/queue URLs (app.env, not the operator's), the worker metrics it scrapes and the
rendered tree it runs; the checklist reuses them so `schedgen checklist --live` needs no flags after
`schedgen deploy`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.runtime.locate import endpoints as stack_endpoints

DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class LocalDeployment:
    url: str
    tree: Path | None = None
    database_url: str | None = None
    redis_url: str | None = None
    worker_metrics_urls: tuple[str, ...] = ()


def local_deployment(project: Path) -> LocalDeployment:
    """The active local deployment's api URL, data URLs and tree; the default URL when none is active."""
    live = stack_endpoints(project, "local")
    if live.tree is None:
        return LocalDeployment(DEFAULT_URL)
    return LocalDeployment(
        live.api_url or DEFAULT_URL,  # the front door: what clients see, headers and TLS included
        live.tree,
        live.app_env.get("SCHEDGEN_DATABASE_URL"),  # the service's own credentials: what live checks judge
        live.app_env.get("SCHEDGEN_REDIS_URL"),
        live.worker_metrics_urls,
    )
