"""Where a running stack answers, as its own runtime knows it: the one locator health, backup and the
checklist ask (`Runtime.endpoints`).

Each runtime fills what it can see from this machine: the local runtime reads its active tree (ports,
secrets, scrape config) and its supervisord; compose asks the engine for the api's published ports;
kubernetes publishes nothing here. Callers layer their own precedence on top (an explicit flag, then
``SCHEDGEN_*`` environment, then these facts); a fact left empty is not guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StackEndpoints:
    """One runtime's answer; everything empty means "nothing of this stack is reachable from here"."""

    target: str
    #: The rendered tree the stack runs (local: ``run/active``), None when nothing was deployed.
    tree: Path | None = None
    #: Whether the stack's processes run now (local: its supervisord answers).
    running: bool = False
    #: What clients call: the local front door, or compose's first published api replica.
    api_url: str = ""
    #: Each api replica's own address, by replica name.
    replica_urls: dict[str, str] = field(default_factory=dict)
    #: Operator credentials (local ``ops.env``: database owner, Redis backup user), ``SCHEDGEN_*`` names.
    ops_env: dict[str, str] = field(default_factory=dict)
    #: The service's own credentials (local ``app.env``), ``SCHEDGEN_*`` names.
    app_env: dict[str, str] = field(default_factory=dict)
    #: The local data directory (Postgres, Redis, uploads), when it exists.
    data_dir: Path | None = None
    #: The uploads directory of file storage, when it exists.
    uploads_dir: Path | None = None
    #: The local supervisord's control socket, when it runs.
    supervisor_sock: Path | None = None
    #: Each worker slot's metrics URL (from the scrape config the stack's Prometheus uses).
    worker_metrics_urls: tuple[str, ...] = ()

    @property
    def database_url(self) -> str:
        """The operator's ledger URL (empty when the runtime does not publish Postgres here)."""
        return self.ops_env.get("SCHEDGEN_DATABASE_URL", "")

    @property
    def redis_url(self) -> str:
        """The operator's queue URL (empty when the runtime does not publish Redis here)."""
        return self.ops_env.get("SCHEDGEN_REDIS_URL", "")


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
