"""Rate limits keyed on the real client: trusted-proxy XFF, API keys, spoofing ignored, 429 headers."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg
from stackkit import Stack

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
