"""The probes, one module per component; `PROBES` is the order they are listed in."""

from __future__ import annotations

from schedgen_ops.ops.health.checks import (
    api,
    backup,
    disk,
    frontdoor,
    ledger,
    postgres,
    queue,
    redis_,
    storage,
    tls,
    wal_archive,
)
from schedgen_ops.ops.health.runner import Probe

PROBES: tuple[Probe, ...] = (
    Probe(
        "api", "liveness", api.probe, "the api accepts connections but does not answer: `schedgen logs api`"
    ),
    Probe(
        "api",
        "frontdoor",
        frontdoor.probe,
        "the local front door accepts connections but does not answer: `schedgen logs frontdoor`",
    ),
    Probe(
        "postgres",
        "reachable",
        postgres.probe,
        "Postgres accepts connections but does not answer: check its log, disk and load",
    ),
    Probe(
        "redis",
        "reachable",
        redis_.probe,
        "Redis accepts connections but does not answer: check its log, CPU and memory",
    ),
    Probe("queue", "backlog", queue.probe, "the queue Redis does not answer: see the redis rows"),
    Probe(
        "queue",
        "failed_ratio",
        ledger.probe,
        "the job ledger (Postgres) does not answer: see the postgres rows",
    ),
    Probe(
        "storage",
        "reachable",
        storage.probe,
        "the upload storage hangs (NFS/S3?): check the volume or endpoint",
    ),
    Probe("disk", "data", disk.probe, "statfs hangs: a network filesystem is unresponsive"),
    Probe("backup", "age", backup.probe, "reading the backup directory hangs: check its filesystem"),
    Probe(
        "backup",
        "wal_archive",
        wal_archive.probe,
        "Postgres accepts connections but pg_stat_archiver does not answer: check its load and log",
    ),
    Probe(
        "tls", "expiry", tls.probe, "the domain accepts TCP but the TLS handshake hangs: check the edge proxy"
    ),
)
