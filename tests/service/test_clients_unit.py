"""Client identity without a server: X-Forwarded-For hops, IPv6 buckets, the bounded key caches."""

from __future__ import annotations

import secrets
from ipaddress import ip_network

import pytest

from schedgen_ops.service.clients import KeyCache, client_bucket, client_ip, well_formed

EDGE = [ip_network("10.250.0.0/24")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("203.0.113.5", "1.2.3.4", "203.0.113.5"),  # not from the edge: the header is ignored
        ("10.250.0.2", "1.2.3.4", "1.2.3.4"),
        ("10.250.0.2", "6.6.6.6, 1.2.3.4", "1.2.3.4"),  # left of the edge's hop: the client's own words
        ("10.250.0.2", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # the same as two headers
        ("10.250.0.2", "1.2.3.4, 10.250.0.3", "1.2.3.4"),  # a trusted hop is skipped
        ("10.250.0.2", "10.250.0.9", "10.250.0.9"),  # the left-most hop is the client, never a proxy
        ("10.250.0.2", "1.2.3.4, junk", "10.250.0.2"),  # garbage nearer than the client: the peer
        ("10.250.0.2", "10.0.0.1", "10.0.0.1"),  # other private ranges are clients, not proxies
        ("::ffff:10.250.0.2", "1.2.3.4", "1.2.3.4"),  # an IPv4-mapped edge address is the edge
        ("10.250.0.2", None, "10.250.0.2"),
        (None, "1.2.3.4", "unknown"),
    ],
)
def test_client_ip_takes_the_right_most_untrusted_hop(
    peer: str | None, forwarded: str | list[str] | None, client: str
) -> None:
    assert client_ip(peer, forwarded, EDGE) == client


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:DB8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_ipv6_clients_are_bucketed_by_their_64(address: str, bucket: str) -> None:
    assert client_bucket(address) == bucket


def _key() -> str:
    return f"sgk_{secrets.token_hex(4)}_{secrets.token_urlsafe(24)}"


def test_key_shape_is_checked_before_any_lookup() -> None:
    assert well_formed(_key())
    for bad in ("sgk_nope_nope", "", _key() + "x", _key().replace("sgk_", "sgx_"), "sgk_" + "a" * 4000):
        assert not well_formed(bad), bad


def test_a_flood_of_unknown_keys_stays_bounded_and_evicts_no_valid_key() -> None:
    cache = KeyCache(ttl_s=30, max_valid=50, max_unknown=100)
    valid = {_key(): f"id{i}" for i in range(50)}
    for key, key_id in valid.items():
        cache.put(key, key_id)
    flood = [_key() for _ in range(5000)]
    for key in flood:
        cache.put(key, None)
    assert cache.sizes() == (50, 100)
    assert all(cache.get(key) == (True, key_id) for key, key_id in valid.items())
    assert cache.get(flood[-1]) == (True, None)  # recent unknown keys are answered from the cache
    assert cache.get(flood[0]) == (False, None)  # the oldest were evicted, not kept without bound


def test_valid_keys_are_evicted_least_recently_used_first() -> None:
    cache = KeyCache(max_valid=2)
    a, b, c = _key(), _key(), _key()
    cache.put(a, "a")
    cache.put(b, "b")
    assert cache.get(a) == (True, "a")  # a is now the most recently used
    cache.put(c, "c")
    assert cache.get(b) == (False, None) and cache.get(a) == (True, "a") and cache.get(c) == (True, "c")
