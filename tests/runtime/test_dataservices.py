"""The local Postgres/Redis helpers start real servers, survive restarts and report failures clearly."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import dataservices, localserver
from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port, service_tempdir


@pytest.fixture
def base() -> Iterator[Path]:
    path = service_tempdir("schedgen-ds-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_session_fixtures_give_isolated_databases(database_url: str, redis_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1)")
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    client = redis.Redis.from_url(redis_url)
    assert client.dbsize() == 0
    client.set("k", "v")
    client.close()


def test_postgres_data_survives_restart_and_runs_unprivileged(base: Path) -> None:
    server = PostgresServer.start(base / "pg", settings={"fsync": "off"})
    try:
        assert server.is_running() and server.pid
        url = server.create_database("keep")
        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE t (x int)")
            conn.execute("INSERT INTO t VALUES (42)")
            assert conn.execute("SELECT current_setting('data_directory')").fetchone() == (str(base / "pg"),)
        port = server.port
        server.stop()
        assert not server.is_running()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(url, connect_timeout=1)
        server.restart()
        assert server.port == port
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT x FROM t").fetchone() == (42,)
        if dataservices.running_as_root():
            assert (base / "pg").stat().st_uid != 0
    finally:
        server.stop()


def test_redis_aof_survives_restart_with_noeviction(base: Path) -> None:
    server = RedisServer.start(base / "redis", appendonly="yes")
    try:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        client.rpush("queue", "a", "b")
        client.close()
        server.restart()
        client = redis.Redis.from_url(server.url)
        assert client.lrange("queue", 0, -1) == [b"a", b"b"]
        client.close()
    finally:
        server.stop()


def test_port_in_use_is_a_clear_error(base: Path) -> None:
    first = RedisServer.start(base / "r1")
    try:
        with pytest.raises(SchedgenError) as info:
            RedisServer.start(base / "r2", port=first.port, timeout=5)
        assert "redis-server exited" in info.value.message
    finally:
        first.stop()


def test_missing_binaries_name_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(localserver.shutil, "which", lambda name: None)
    monkeypatch.setattr(localserver.glob, "glob", lambda pattern: [])
    with pytest.raises(SchedgenError, match="initdb not found") as info:
        dataservices.find_postgres_bindir()
    assert info.value.hint == "apt-get install postgresql"
    with pytest.raises(SchedgenError, match="redis-server not found"):
        dataservices.find_redis_server()


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
