"""Shared test fixtures: access to ../shared data with the skip/require policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("SCHEDGEN_SHARED_DIR", REPO_ROOT.parent / "shared"))
UP_PDFS = SHARED_DIR / "fixtures" / "up-pdfs"


def shared_path(*parts: str) -> Path:
    """Path to a file under ../shared; skip when absent, fail when SCHEDGEN_REQUIRE_SHARED=1."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        reason = f"shared test data {path} is absent (clone the project beside its shared/ directory)"
        if os.environ.get("SCHEDGEN_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; SCHEDGEN_REQUIRE_SHARED=1 requires it")
        pytest.skip(reason)
    return path


@pytest.fixture
def up_pdf():
    """Return a function mapping a real UP PDF's name (e.g. "UP_MOD_XLS.pdf") to its path."""
    return lambda name: shared_path("fixtures", "up-pdfs", name)


# --- Real data servers (schedgen_ops.runtime.dataservices) -------------------------------------------
# postgres_server / redis_server: one local server each per test session (fast, throwaway settings).
# database_url: a fresh, empty database per test (CREATE DATABASE from a template), dropped afterwards.
# redis_url: a flushed logical database per test (index rotates 1..15; 0 is left for ad-hoc use).
# Tests that stop/restart/flush a server must start their own with PostgresServer/RedisServer.start.

import itertools  # noqa: E402
import shutil  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, service_tempdir  # noqa: E402

PG_TEST_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}
PG_TEMPLATE_DB = "schedgen_test_template"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (runs as nobody when root), removed afterwards."""
    base = service_tempdir("schedgen-test-pg-")
    server = PostgresServer.start(base / "data", settings=PG_TEST_SETTINGS)
    server.execute(f'CREATE DATABASE "{PG_TEMPLATE_DB}" TEMPLATE template0')
    try:
        yield server
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a fresh, empty database for this test only."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name, template=PG_TEMPLATE_DB)
    try:
        yield url
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server for the whole session (AOF off for speed, noeviction), removed afterwards."""
    base = service_tempdir("schedgen-test-redis-")
    server = RedisServer.start(base / "data", appendonly="no")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


_redis_db_index = itertools.cycle(range(1, 16))


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """URL of a flushed logical Redis database for this test."""
    import redis

    url = redis_server.url_for(next(_redis_db_index))
    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """URL of a real S3-protocol server (moto's server mode) on 127.0.0.1 for the whole session.

    moto keeps buckets per process, not per server: tests create buckets with names of their own
    (see `s3_bucket_name`) so they never see each other's.
    """
    from moto.server import ThreadedMotoServer

    from schedgen_ops.runtime.dataservices import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket_name() -> str:
    """A bucket name no other test uses."""
    import uuid

    return f"test-{uuid.uuid4().hex[:16]}"
