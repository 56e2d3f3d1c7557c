"""Who is calling: an API key (stored hashed in Postgres) or the client IP.

The IP comes from X-Forwarded-For only when the TCP peer is a trusted proxy; then the address nearest
to us that is not itself a trusted proxy is the client. A forged header from anyone else is ignored.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_address

import psycopg

Network = IPv4Network | IPv6Network
KEY_PREFIX = "sgk_"


def client_ip(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The real client address for rate limiting and logs."""
    if not peer:
        return "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    hops = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    for hop in reversed(hops):
        try:
            ip_address(hop)
        except ValueError:
            return peer  # garbage in the chain: fall back to what we can verify
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: str
    revoked_at: str | None
    last_used_at: str | None


def create_key(conn: psycopg.Connection, name: str) -> tuple[str, str]:
    """Create a key; return (id, the full key). The key is shown once; only its hash is stored."""
    key_id = secrets.token_hex(4)
    key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"
    conn.execute("INSERT INTO api_keys (id, name, key_hash) VALUES (%s, %s, %s)", (key_id, name, _hash(key)))
    return key_id, key


def list_keys(conn: psycopg.Connection) -> list[ApiKey]:
    rows = conn.execute(
        "SELECT id, name, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at"
    ).fetchall()
    return [
        ApiKey(
            r[0],
            r[1],
            r[2].isoformat(),
            r[3].isoformat() if r[3] else None,
            r[4].isoformat() if r[4] else None,
        )
        for r in rows
    ]


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


def lookup_key(conn: psycopg.Connection, key: str) -> str | None:
    """The key id of a valid, unrevoked key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    row = conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE key_hash = %s AND revoked_at IS NULL RETURNING id",
        (_hash(key),),
    ).fetchone()
    return str(row[0]) if row else None


class KeyCache:
    """Remember key lookups for a few seconds so status polling does not hit Postgres every time."""

    def __init__(self, ttl_s: float = 30.0) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, str | None]:
        with self._lock:
            entry = self._entries.get(_hash(key))
        if entry and entry[0] > time.monotonic():
            return True, entry[1]
        return False, None

    def put(self, key: str, key_id: str | None) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[_hash(key)] = (time.monotonic() + self.ttl_s, key_id)
