"""Property-based checks of the api against its own OpenAPI schema: no 5xx, responses match the schema.

Positive and negative inputs (schemathesis' default modes), once with the ops token and once as a
stranger (no token, a random API key on some requests): neither may ever get a 5xx.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from stackkit import OPS_TOKEN, Stack, service_env

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port


@pytest.fixture(scope="module")
def api_schema(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    workdir: Path = tmp_path_factory.mktemp("schemathesis")
    # The docs and schema are off by default (production); this api serves them to be tested against.
    env = service_env(url, redis_server.url_for(0), workdir, SCHEDGEN_API_DOCS="true")
    stack = Stack(env, workdir, free_port())
    try:
        stack.start_api()
        yield schemathesis.openapi.from_url(f"{stack.base_url}/openapi.json")
    finally:
        stack.stop()
        postgres_server.drop_database(name)
        shutil.rmtree(workdir, ignore_errors=True)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {OPS_TOKEN}"}
    # A schema-valid multipart body is still not a PDF: the upload rejects random bytes with 415/422
    # by design (the schema cannot say "a PDF"), so "positive data acceptance" does not apply to it.
    excluded = [schemathesis.checks.positive_data_acceptance] if case.path == "/api/uploads" else []
    response = case.call_and_validate(excluded_checks=excluded)
    assert response.status_code < 500


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
def test_strangers_never_get_a_5xx(case: schemathesis.Case) -> None:
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    # A random-looking key on every other case, derived from the case so a failure replays exactly.
    digest = hashlib.sha256(repr((case.path, case.path_parameters, case.query, case.body)).encode()).digest()
    if digest[0] % 2:
        headers["X-API-Key"] = f"sgk_{digest[1:5].hex()}_{base64.urlsafe_b64encode(digest[5:29]).decode()}"
    case.headers = headers
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])
    assert response.status_code != 200 or not case.path.startswith(("/api/queue", "/api/ops/"))
    if response.status_code >= 400 and case.path not in ("/metrics", "/readyz"):
        assert response.json()["error"]["code"], response.text[:300]
