"""The api's connection pool never lends a dead connection: after the server drops every session
(a restart, a failover, pg_terminate_backend), the next requests all succeed."""

from __future__ import annotations

import psycopg

from schedgen_ops.service.db import make_pool
from schedgen_ops.service.settings import ServiceSettings


def test_connections_killed_by_the_server_are_replaced_before_use(database_url: str) -> None:
    settings = ServiceSettings(database_url=database_url, db_pool_min=2, db_pool_max=2)  # type: ignore[call-arg]
    pool = make_pool(settings, name="pool-test")
    try:
        pool.wait(timeout=10)
        for _ in range(4):  # every pooled connection used just now: the case a "recently used" shortcut skips
            with pool.connection() as conn:
                conn.execute("SELECT 1")
        with psycopg.connect(database_url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()) t"
            ).fetchone()
        assert killed and killed[0] >= 2
        for _ in range(5):
            with pool.connection() as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        pool.close()
