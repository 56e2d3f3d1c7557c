"""The ops endpoint for load-test keys against a real api process (real Postgres and Redis): minted keys
work, limits are refused with the JSON error shape, keys expire and are refused on time, only the ops
token is accepted, and revoking a label never touches a client's key."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from stackkit import OPS_TOKEN, Stack

from schedgen_ops.service import db
from schedgen_ops.service.clients import KeyCache, check_key, create_key, mint_loadtest_keys

OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
MINT = "/api/ops/loadtest-keys"


@pytest.fixture
def api(service_stack: Callable[..., Stack]) -> Stack:
    return service_stack()


def mint(stack: Stack, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return stack.client.post(MINT, json=body, headers=OPS if headers is None else headers)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_count(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM api_keys").fetchone()
    assert row is not None
    return int(row[0])


def test_minted_keys_work_and_revoking_the_label_stops_only_them(
    api: Stack, synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    pdf = synthetic_pdfs["exams"]
    response = mint(api, {"count": 3, "ttl_s": 120, "label": "ci-run-1"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["label"] == "ci-run-1" and body["ttl_s"] == 120
    keys = body["keys"]
    assert len(keys) == len(set(keys)) == 3 and all(k.startswith("sgk_") for k in keys)
    expires_at = dt.datetime.fromisoformat(body["expires_at"])
    assert abs((expires_at - dt.datetime.now(dt.UTC)).total_seconds() - 120) < 10

    accepted = api.upload(pdf, headers={"X-API-Key": keys[0]})
    assert accepted.status_code == 202, accepted.text
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT id, key_hash, loadtest_label, expires_at FROM api_keys ORDER BY created_at"
        ).fetchall()
        client = conn.execute("SELECT client_id FROM jobs").fetchone()
        # a client's key that happens to carry the label as its name: the revoke must not touch it
        _, partner = create_key(conn, "ci-run-1")
    assert {r[1] for r in rows} == {key_hash(k) for k in keys}  # only hashes are stored
    assert {r[2] for r in rows} == {"ci-run-1"} and {r[3] for r in rows} == {expires_at}
    assert client is not None and client[0] in {f"key:{r[0]}" for r in rows}

    more = mint(api, {"count": 2, "label": "ci-run-1"}).json()  # a second batch joins the label
    assert more["ttl_s"] == 7200 and len(set(more["keys"]) | set(keys)) == 5

    revoked = api.client.delete(f"{MINT}/ci-run-1", headers=OPS)
    assert revoked.status_code == 200 and revoked.json() == {"label": "ci-run-1", "revoked": 5}
    # refused at once, although keys[0] was just validated (and cached) by this api process
    refused = api.upload(pdf, headers={"X-API-Key": keys[0]})
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert api.upload(pdf, headers={"X-API-Key": more["keys"][0]}).status_code == 401
    assert api.upload(pdf, headers={"X-API-Key": partner}).status_code == 202
    again = api.client.delete(f"{MINT}/ci-run-1", headers=OPS)
    assert again.status_code == 200 and again.json()["revoked"] == 0  # idempotent cleanup

    default = mint(api, {"count": 1}).json()
    assert re.fullmatch(r"loadtest-[0-9a-f]{8}", default["label"]) and default["ttl_s"] == 7200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"count": -5}, "count"),
        ({"count": 1, "ttl_s": 59}, "ttl_s"),
        ({"count": 1, "ttl_s": 86_401}, "ttl_s"),
        ({"count": "5"}, "count"),
        ({"count": True}, "count"),
        ({"count": 2.5}, "count"),
        ({}, "count"),
        ({"count": 1, "label": "../etc"}, "label"),
        ({"count": 1, "label": "x" * 65}, "label"),
        ({"count": 1, "ttl": 60}, "ttl"),
    ],
)
def test_out_of_range_requests_are_refused_with_the_error_envelope(
    api: Stack, database_url: str, body: dict[str, Any], field: str
) -> None:
    response = mint(api, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and f"body.{field}" in error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert key_count(database_url) == 0


def test_limits_are_inclusive(api: Stack, database_url: str) -> None:
    most = mint(api, {"count": 1000, "ttl_s": 86_400})
    assert most.status_code == 201 and len(set(most.json()["keys"])) == 1000
    least = mint(api, {"count": 1, "ttl_s": 60})
    assert least.status_code == 201 and len(least.json()["keys"]) == 1
    assert key_count(database_url) == 1001
    bad = api.client.delete(f"{MINT}/-leading-dash", headers=OPS)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"


def test_expired_keys_are_refused_also_when_cached(
    api: Stack, synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    pdf = synthetic_pdfs["exams"]
    expired, soon, fine = mint(api, {"count": 3, "ttl_s": 60, "label": "ttl"}).json()["keys"]
    with psycopg.connect(database_url, autocommit=True) as conn:
        # the clock of the database decides; move the expiry instead of waiting a minute
        conn.execute(
            "UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE key_hash = %s",
            (key_hash(expired),),
        )
        conn.execute(
            "UPDATE api_keys SET expires_at = now() + interval '1.5 seconds' WHERE key_hash = %s",
            (key_hash(soon),),
        )
    refused = api.upload(pdf, headers={"X-API-Key": expired})
    assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]
    assert api.upload(pdf, headers={"X-API-Key": soon}).status_code == 202  # validated, now cached
    time.sleep(2.0)
    # the cache (30 s) must not outlive the key's expiry
    assert api.upload(pdf, headers={"X-API-Key": soon}).status_code == 401
    assert api.upload(pdf, headers={"X-API-Key": fine}).status_code == 202


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {OPS_TOKEN}x"},
        {"Authorization": OPS_TOKEN},
        {"Authorization": f"Basic {OPS_TOKEN}"},
    ],
    ids=["missing", "wrong", "longer", "no-scheme", "basic"],
)
def test_ops_routes_refuse_a_missing_or_wrong_token(
    api: Stack, database_url: str, headers: dict[str, str]
) -> None:
    for response in (
        mint(api, {"count": 1}, headers=headers),
        mint(api, {"count": 99_999}, headers=headers),  # auth is checked before the body
        api.client.delete(f"{MINT}/ci-run-1", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
    assert key_count(database_url) == 0


def test_an_api_key_is_not_the_ops_token_and_an_unset_token_opens_nothing(
    service_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = service_stack(SCHEDGEN_OPS_TOKEN="")
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, key = create_key(conn, "partner")
    assert mint(stack, {"count": 1}, headers={"X-API-Key": key}).status_code == 401
    assert mint(stack, {"count": 1}, headers={"Authorization": f"Bearer {OPS_TOKEN}"}).status_code == 401
    assert mint(stack, {"count": 1}, headers={"Authorization": "Bearer"}).status_code == 401
    assert key_count(database_url) == 1


def test_key_checks_report_the_remaining_lifetime_and_the_cache_honours_it(database_url: str) -> None:
    db.migrate(database_url)
    with db.connect(database_url) as conn:
        (key,), _ = mint_loadtest_keys(conn, "unit", 1, 90)
        _, plain = create_key(conn, "partner")
        valid = check_key(conn, key)
        assert valid is not None and 80 < (valid.expires_in_s or 0) <= 90
        forever = check_key(conn, plain)
        assert forever is not None and forever.expires_in_s is None
    cache = KeyCache(ttl_s=30)
    cache.put(key, "id1", expires_in_s=0.05)
    cache.put(plain, "id2")
    assert cache.get(key) == (True, "id1")
    time.sleep(0.1)
    assert cache.get(key) == (False, None) and cache.get(plain) == (True, "id2")
    cache.forget([key_hash(plain)])
    assert cache.get(plain) == (False, None)
