"""Where ``--live`` looks when no ``--url`` is given: the local runtime's active deployment.

The local runtime (supervisord) knows the api port, the service's own ledger/queue URLs (app.env, not the
operator's) and the rendered tree it runs;
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
    worker_metrics_urls: tuple[str, ...] = ()


def worker_metrics_urls(tree: Path) -> tuple[str, ...]:
    """Every worker slot's metrics URL, from the scrape config the local runtime's Prometheus uses."""
    import yaml

    path = tree / "local" / "prometheus.yml"
    if not path.is_file():
        return ()
    config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    urls = []
    for job in config.get("scrape_configs") or []:
        if "worker" in str(job.get("job_name", "")):
            metrics_path = str(job.get("metrics_path", "/metrics"))
            for static in job.get("static_configs") or []:
                urls += [f"http://{target}{metrics_path}" for target in static.get("targets") or []]
    return tuple(urls)


def local_deployment(project: Path) -> LocalDeployment:
    """The active local deployment's api URL, data URLs and tree; the default URL when none is active."""
    from schedgen_ops.runtime.local import LocalRuntime

    runtime = LocalRuntime(project)
    tree = runtime.active_tree()
    if tree is None:
        return LocalDeployment(DEFAULT_URL)
    url = DEFAULT_URL
    values: dict[str, str] = {}
    with contextlib.suppress(SchedgenError, OSError, KeyError, ValueError):
        url = runtime.public_url(tree)  # the front door: what clients see, headers and TLS included
    with contextlib.suppress(SchedgenError, OSError, KeyError, ValueError):
        values = runtime.app_env(tree)  # the service's own credentials: what live checks must judge
    return LocalDeployment(
        url,
        tree,
        values.get("SCHEDGEN_DATABASE_URL"),
        values.get("SCHEDGEN_REDIS_URL"),
        worker_metrics_urls(tree),
    )
