"""Local PostgreSQL and Redis servers from the binaries on this machine: the names, in one place.

Used by the tests (real servers, no mocks), by the local runtime when no external URL is configured,
and by backup/health tests that need to stop and restart a server on the same data directory. Each
piece has its own module: `localserver` (ports, privileges, binaries, the child process),
`postgres_server`, `redis_server`, and `postgres_roles` (the local runtime's role bootstrap).

    pg = PostgresServer.start(Path("/tmp/x/pg"))        # initdb on first use, then postgres
    pg.url                                              # postgresql://postgres@127.0.0.1:PORT/postgres
    pg.restart(); pg.stop()
    rd = RedisServer.start(Path("/tmp/x/redis"), appendonly="yes")
    rd.url; rd.restart(); rd.stop()
"""

from __future__ import annotations

from schedgen_ops.runtime.localserver import (
    SERVICE_USER,
    LocalServer,
    _as_service_user,
    _chown_service_user,
    find_postgres_bindir,
    find_redis_server,
    free_port,
    free_port_block,
    running_as_root,
    service_tempdir,
)
from schedgen_ops.runtime.postgres_server import PG_SUPERUSER, PostgresServer
from schedgen_ops.runtime.redis_server import RedisServer

__all__ = [
    "PG_SUPERUSER",
    "SERVICE_USER",
    "LocalServer",
    "PostgresServer",
    "RedisServer",
    "_as_service_user",
    "_chown_service_user",
    "find_postgres_bindir",
    "find_redis_server",
    "free_port",
    "free_port_block",
    "running_as_root",
    "service_tempdir",
]
