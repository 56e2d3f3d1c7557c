"""Rate limits keyed on the real client: trusted-proxy XFF, API keys, spoofing ignored, 429 headers."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from stackkit import Stack, service_env

from schedgen_ops.runtime.dataservices import RedisServer, free_port
from schedgen_ops.service.clients import create_key


def _upload(stack: Stack, pdf: bytes, **headers: str) -> int:
    return stack.upload(pdf, headers=headers).status_code


def test_eleventh_upload_in_an_hour_is_limited_per_client(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    # The test client connects from 127.0.0.1, a trusted proxy here: X-Forwarded-For names the client.
    stack = service_stack(SCHEDGEN_TRUSTED_PROXIES="127.0.0.1/32")
    pdf = synthetic_pdfs["exams"]
    alice = {"X-Forwarded-For": "203.0.113.7"}
    codes = [_upload(stack, pdf, **alice) for _ in range(10)]
    assert codes == [202] * 10
    limited = stack.upload(pdf, headers=alice)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    retry_after = int(limited.headers["Retry-After"])
    assert 3000 < retry_after <= 3600
    assert limited.headers["X-RateLimit-Limit"] == "10"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert int(limited.headers["X-RateLimit-Reset"]) > time.time()
    # Another client behind the same proxy has its own bucket; its headers count down from 10.
    bob = stack.upload(pdf, headers={"X-Forwarded-For": "198.51.100.9, 127.0.0.1"})
    assert bob.status_code == 202 and bob.headers["X-RateLimit-Remaining"] == "9"
    # An API key is its own client, even from alice's address.
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, key = create_key(conn, "partner")
    assert _upload(stack, pdf, **alice, **{"X-API-Key": key}) == 202
    bad_key = stack.upload(pdf, headers={"X-API-Key": "sgk_nope_nope"})
    assert bad_key.status_code == 401 and bad_key.json()["error"]["code"] == "invalid_api_key"
    # Health and metrics are exempt; 429s are counted in the metrics.
    assert stack.client.get("/healthz", headers=alice).status_code == 200
    metrics = stack.client.get("/metrics").text
    assert 'route="/api/uploads",status="429"' in metrics
    assert 'schedgen_uploads_total{outcome="rate_limited"} 1.0' in metrics


def test_spoofed_forwarded_for_from_an_untrusted_peer_is_ignored(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    stack = service_stack(SCHEDGEN_TRUSTED_PROXIES="10.0.0.0/8", SCHEDGEN_RATE_UPLOADS="3/hour")
    pdf = synthetic_pdfs["exams"]
    codes = [_upload(stack, pdf, **{"X-Forwarded-For": f"192.0.2.{i}"}) for i in range(4)]
    assert codes == [202, 202, 202, 429]
    with psycopg.connect(database_url) as conn:
        clients = {row[0] for row in conn.execute("SELECT client_id FROM jobs")}
    assert clients == {"ip:127.0.0.1"}


def test_status_polling_has_its_own_limit(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = service_stack(SCHEDGEN_RATE_STATUS="5/minute")
    job = stack.upload(synthetic_pdfs["exams"]).json()
    codes = [stack.client.get(job["status_url"]).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]
    # Other requests (events) use the general bucket and are not blocked by the status limit.
    assert stack.client.get(job["events_url"]).status_code == 409


NO_JOB = "/api/jobs/" + "0" * 32  # a status poll: counted in the status bucket, answers 404


def _poll(stack: Stack, *forwarded: str, key: str | None = None) -> httpx.Response:
    headers = [("X-Forwarded-For", hop) for hop in forwarded]
    if key:
        headers.append(("X-API-Key", key))
    return stack.client.get(NO_JOB, headers=headers)


def test_forwarded_for_spoofing_never_chooses_the_bucket(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    # 127.0.0.1 plays the edge (trusted); everything a client writes left of the edge's hop is ignored.
    stack = service_stack(SCHEDGEN_TRUSTED_PROXIES="127.0.0.1/32", SCHEDGEN_RATE_STATUS="3/minute")
    rotating_left = [_poll(stack, f"198.51.100.{i}, 203.0.113.7").status_code for i in range(4)]
    assert rotating_left == [404, 404, 404, 429]
    # A second X-Forwarded-For header of the client's own sits left of the edge's: same bucket, still 429.
    assert _poll(stack, "198.51.100.99", "203.0.113.7").status_code == 429
    assert _poll(stack, "203.0.113.7, 127.0.0.1").status_code == 429  # a trusted hop is skipped
    assert _poll(stack, "203.0.113.8").headers["X-RateLimit-Remaining"] == "2"  # another client
    # IPv6: one bucket per /64, whatever the interface id; the next /64 is another client.
    v6 = [_poll(stack, f"2001:db8:1:2::{i:x}").status_code for i in range(1, 5)]
    assert v6 == [404, 404, 404, 429]
    assert _poll(stack, "2001:db8:1:2:ffff:ffff:ffff:ffff").status_code == 429
    assert _poll(stack, "2001:db8:1:3::1").status_code == 404
    # An IPv4-mapped IPv6 address is the IPv4 client.
    assert _poll(stack, "::ffff:203.0.113.8").headers["X-RateLimit-Remaining"] == "1"
    # The ledger records the bucket, not the interface id.
    upload = stack.upload(synthetic_pdfs["exams"], headers={"X-Forwarded-For": "2001:db8:9:9::abcd"})
    assert upload.status_code == 202, upload.text
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT client_id FROM jobs").fetchone()
    assert row == ("ip:2001:db8:9:9::/64",)


def _random_key() -> str:
    return f"sgk_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"


def test_random_api_keys_are_limited_before_any_database_lookup(
    service_stack: Callable[..., Stack], database_url: str
) -> None:
    stack = service_stack(SCHEDGEN_TRUSTED_PROXIES="127.0.0.1/32", SCHEDGEN_RATE_KEY_FAILURES="5/minute")
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, good = create_key(conn, "partner")
    attacker = "203.0.113.66"
    assert [_poll(stack, attacker, key=good).status_code for _ in range(8)] == [404] * 8  # valid: free
    tried = [_random_key() for _ in range(5)]
    assert [_poll(stack, attacker, key=key).status_code for key in tried] == [401] * 5
    # From here on, a lookup would fail loudly (503): the key table is out of the api's reach.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE api_keys RENAME TO api_keys_hidden")
    try:
        limited = _poll(stack, attacker, key=_random_key())
        assert limited.status_code == 429, limited.text  # not 503: no lookup was made
        assert limited.json()["error"]["code"] == "rate_limited"
        assert (
            0 < int(limited.headers["Retry-After"]) <= 60 and limited.headers["X-RateLimit-Remaining"] == "0"
        )
        assert _poll(stack, attacker, key=tried[0]).status_code == 429
        assert _poll(stack, attacker, key=good).status_code == 404  # a cached valid key keeps working
        # Another address still has its budget: an unknown key it has not sent before is looked up...
        assert _poll(stack, "203.0.113.67", key=_random_key()).status_code == 503
        # ...while known-unknown keys (the negative cache) and malformed keys are refused without one.
        assert _poll(stack, "203.0.113.67", key=tried[1]).status_code == 401
        assert _poll(stack, "203.0.113.68", key="sgk_nope_nope").status_code == 401
        assert _poll(stack, "203.0.113.68", key="x" * 4000).status_code == 401
        # Health and metrics never look at a key (a probe must not depend on the database).
        assert stack.client.get("/healthz", headers={"X-API-Key": _random_key()}).status_code == 200
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE api_keys_hidden RENAME TO api_keys")


def test_junk_keys_from_a_shared_address_cost_no_one_else_their_budget(
    service_stack: Callable[..., Stack], database_url: str
) -> None:
    """Behind a campus NAT one address is many students: keys refused without a lookup (malformed, or
    already known to be unknown) must not use up ``rate_key_failures`` for the rest of them."""
    stack = service_stack(SCHEDGEN_TRUSTED_PROXIES="127.0.0.1/32", SCHEDGEN_RATE_KEY_FAILURES="3/minute")
    nat = "203.0.113.80"
    assert {_poll(stack, nat, key=f"sgk_nope_{i}").status_code for i in range(20)} == {401}
    unknown = _random_key()
    assert {_poll(stack, nat, key=unknown).status_code for _ in range(20)} == {401}  # one lookup, then cached
    with psycopg.connect(database_url, autocommit=True) as conn:
        _, student = create_key(conn, "student behind the NAT")
    assert _poll(stack, nat, key=student).status_code == 404  # looked up, valid: the budget was intact
    # Lookups that find an unknown key do count: one above, two here, and the third of three is spent.
    assert [_poll(stack, nat, key=_random_key()).status_code for _ in range(3)] == [401, 401, 429]


def test_uploads_stay_limited_while_redis_is_stopped(
    database_url: str, synthetic_pdfs: dict[str, bytes], tmp_path: Path
) -> None:
    redis = RedisServer.start(tmp_path / "redis", appendonly="no")
    stack = Stack(
        service_env(database_url, redis.url, tmp_path, SCHEDGEN_RATE_UPLOADS="3/hour"), tmp_path, free_port()
    )
    try:
        stack.start_api()
        redis.stop()
        codes = [stack.upload(synthetic_pdfs["exams"]).status_code for _ in range(4)]
        assert codes == [202, 202, 202, 429]
        limited = stack.upload(synthetic_pdfs["exams"])
        assert limited.status_code == 429 and limited.json()["error"]["code"] == "rate_limited"
        assert 3000 < int(limited.headers["Retry-After"]) <= 3600
        assert limited.headers["X-RateLimit-Limit"] == "3"
        with psycopg.connect(database_url) as conn:  # the accepted ones are in the ledger, queued
            assert conn.execute("SELECT count(*) FROM jobs WHERE status = 'queued'").fetchone() == (3,)
        # Redis back: counting moves back to it (a fresh window there) within the 5 s probe interval.
        redis.restart()
        deadline = time.monotonic() + 20
        while stack.upload(synthetic_pdfs["exams"]).status_code != 202:
            assert time.monotonic() < deadline, "limits never went back to Redis"
            time.sleep(0.5)
        import redis as redis_py

        client = redis_py.Redis.from_url(redis.url)
        try:
            assert any(b"upload" in key for key in client.keys("*")), "the upload was not counted in Redis"
        finally:
            client.close()
    finally:
        stack.stop()
        redis.stop()
