"""Who is calling: an API key (stored hashed in Postgres) or the client IP.

The IP comes from X-Forwarded-For only when the TCP peer is a trusted proxy (the edge's own network);
then the right-most hop that is not itself a trusted proxy is the client. Everything left of it was
written by the client and is never believed, so a forged header moves nobody into another bucket.
IPv6 clients are bucketed by their /64: one host usually owns a whole /64 and could otherwise rotate
through 2**64 addresses, one bucket each.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Annotated

import psycopg
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Network = IPv4Network | IPv6Network
KEY_PREFIX = "sgk_"
#: What `_new_key` makes: prefix, 8 hex digits of public id, 32 URL-safe characters of secret.
KEY_RE = re.compile(r"sgk_[0-9a-f]{8}_[A-Za-z0-9_-]{32}")

# Load-test keys minted by the ops endpoint: bounded so one call cannot flood the table or outlive a day.
LOADTEST_MAX_COUNT = 1000
LOADTEST_TTL_MIN_S = 60
LOADTEST_TTL_MAX_S = 86_400
LOADTEST_TTL_DEFAULT_S = 7_200
#: URL-safe (it is a path segment of the revoke endpoint) and never "." or "..".
LOADTEST_LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
#: Expired load-test keys are kept this long (visible in `schedgen apikeys list`), then purged.
LOADTEST_PURGE_AFTER_S = 7 * 86_400


def client_ip(peer: str | None, forwarded_for: str | Iterable[str] | None, trusted: list[Network]) -> str:
    """The real client address: the peer, or the right-most untrusted X-Forwarded-For hop behind a trusted
    peer. ``forwarded_for`` may be every X-Forwarded-For header of the request, in order (a client that
    sends its own header gets it joined in front of the proxy's, which is still left of the real hop)."""
    if not peer:
        return "unknown"
    if not forwarded_for or not _is_trusted(peer, trusted):
        return peer
    joined = forwarded_for if isinstance(forwarded_for, str) else ",".join(forwarded_for)
    hops = [part.strip() for part in joined.split(",") if part.strip()]
    for index in range(len(hops) - 1, -1, -1):
        hop = hops[index]
        try:
            ip_address(hop)
        except ValueError:
            return peer  # garbage written by a trusted hop: fall back to what we can verify
        if index == 0 or not _is_trusted(hop, trusted):
            return hop  # the left-most hop is the client: nothing vouches for what is left of it
    return peer


def client_bucket(address: str) -> str:
    """Rate-limit identity of an address: IPv4 as is, IPv4-mapped IPv6 as IPv4, other IPv6 as its /64."""
    try:
        ip = ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _is_trusted(address: str, trusted: list[Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
    expires_at: str | None = None


def _new_key() -> tuple[str, str]:
    """(public id, full key): the id is shown in listings, the rest is the secret."""
    key_id = secrets.token_hex(4)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(24)}"


def create_key(conn: psycopg.Connection, name: str) -> tuple[str, str]:
    """Create a key; return (id, the full key). The key is shown once; only its hash is stored."""
    key_id, key = _new_key()
    conn.execute("INSERT INTO api_keys (id, name, key_hash) VALUES (%s, %s, %s)", (key_id, name, _hash(key)))
    return key_id, key


def list_keys(conn: psycopg.Connection) -> list[ApiKey]:
    rows = conn.execute(
        "SELECT id, name, created_at, revoked_at, last_used_at, expires_at FROM api_keys ORDER BY created_at"
    ).fetchall()
    return [
        ApiKey(
            r[0],
            r[1],
            r[2].isoformat(),
            r[3].isoformat() if r[3] else None,
            r[4].isoformat() if r[4] else None,
            r[5].isoformat() if r[5] else None,
        )
        for r in rows
    ]


def revoke_key(conn: psycopg.Connection, key_id: str) -> bool:
    cur = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL", (key_id,)
    )
    return cur.rowcount == 1


@dataclass(frozen=True)
class ValidKey:
    """A key that may be used now, and for how much longer (None: no expiry) by the database's clock."""

    id: str
    expires_in_s: float | None


def well_formed(key: str) -> bool:
    """Whether ``key`` has the shape `_new_key` makes: anything else is refused without a lookup."""
    return KEY_RE.fullmatch(key) is not None


def check_key(conn: psycopg.Connection, key: str) -> ValidKey | None:
    """The key if it is known, unrevoked and unexpired (and mark it used), else None."""
    if not well_formed(key):
        return None
    row = conn.execute(
        "UPDATE api_keys SET last_used_at = now() WHERE key_hash = %s AND revoked_at IS NULL"
        " AND (expires_at IS NULL OR expires_at > now())"
        " RETURNING id, extract(epoch FROM expires_at - now())",
        (_hash(key),),
    ).fetchone()
    if row is None:
        return None
    return ValidKey(str(row[0]), float(row[1]) if row[1] is not None else None)


def lookup_key(conn: psycopg.Connection, key: str) -> str | None:
    """The key id of a valid (unrevoked, unexpired) key, else None."""
    valid = check_key(conn, key)
    return valid.id if valid else None


# --- load-test keys: minted and revoked through the ops endpoint -----------------------------------------


def _json_integer(value: object) -> object:
    """JSON Schema's integer (5, 5.0), never ``"5"`` or ``true``, which pydantic's lax mode would take."""
    if isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    return value


JsonInt = Annotated[int, BeforeValidator(_json_integer)]


class MintKeysRequest(BaseModel):
    """Body of ``POST /api/ops/loadtest-keys``: unknown fields and non-integers are refused, not guessed."""

    model_config = ConfigDict(extra="forbid")

    count: JsonInt = Field(..., ge=1, le=LOADTEST_MAX_COUNT, description="How many keys to mint.")
    ttl_s: JsonInt = Field(
        LOADTEST_TTL_DEFAULT_S,
        ge=LOADTEST_TTL_MIN_S,
        le=LOADTEST_TTL_MAX_S,
        description="Lifetime in seconds; the keys stop working after it even if never revoked.",
    )
    label: str | None = Field(
        None,
        pattern=LOADTEST_LABEL_PATTERN,
        description="Groups the keys for revocation; calls with one label add to it. Default: a new one.",
    )


class MintedKeys(BaseModel):
    """The minted keys: shown only in this response (only their hashes are stored)."""

    label: str
    keys: list[str]
    expires_at: dt.datetime
    ttl_s: int


class RevokedKeys(BaseModel):
    """How many of a label's keys this call revoked (0 when none were active: revoking is idempotent)."""

    label: str
    revoked: int


def new_loadtest_label() -> str:
    return f"loadtest-{secrets.token_hex(4)}"


def mint_loadtest_keys(
    conn: psycopg.Connection, label: str, count: int, ttl_s: int
) -> tuple[list[str], dt.datetime]:
    """Insert ``count`` keys of ``label`` expiring together in ``ttl_s``; returns (keys, expires_at).

    One transaction and one INSERT per round: a key whose short public id collides with an existing one
    is skipped by ``ON CONFLICT`` and drawn again. Also purges load-test keys long expired, so repeated
    CI runs do not grow the table without bound.
    """
    keys: list[str] = []
    with conn.transaction():
        row = conn.execute("SELECT now() + make_interval(secs => %s)", (ttl_s,)).fetchone()
        assert row is not None
        expires_at: dt.datetime = row[0]
        while len(keys) < count:
            batch = dict(_new_key() for _ in range(count - len(keys)))  # same id drawn twice: keep one
            inserted = {
                r[0]
                for r in conn.execute(
                    "INSERT INTO api_keys (id, name, key_hash, expires_at, loadtest_label)"
                    " SELECT id, %s, key_hash, %s, %s FROM unnest(%s::text[], %s::text[]) AS t(id, key_hash)"
                    " ON CONFLICT DO NOTHING RETURNING id",
                    (label, expires_at, label, list(batch), [_hash(k) for k in batch.values()]),
                )
            }
            keys.extend(key for key_id, key in batch.items() if key_id in inserted)
        conn.execute(
            "DELETE FROM api_keys WHERE loadtest_label IS NOT NULL"
            " AND expires_at < now() - make_interval(secs => %s)",
            (LOADTEST_PURGE_AFTER_S,),
        )
    return keys, expires_at


def revoke_loadtest_keys(conn: psycopg.Connection, label: str) -> list[str]:
    """Revoke the label's active load-test keys (never a client's key); returns their hashes."""
    rows = conn.execute(
        "UPDATE api_keys SET revoked_at = now() WHERE loadtest_label = %s AND revoked_at IS NULL"
        " RETURNING key_hash",
        (label,),
    ).fetchall()
    return [str(r[0]) for r in rows]


class _Lru:
    """A bounded map with per-entry deadlines: the least recently used entry goes first when full."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, str | None]] = OrderedDict()

    def get(self, key_hash: str) -> tuple[bool, str | None]:
        entry = self._entries.get(key_hash)
        if entry is None:
            return False, None
        if entry[0] <= time.monotonic():
            del self._entries[key_hash]
            return False, None
        self._entries.move_to_end(key_hash)
        return True, entry[1]

    def put(self, key_hash: str, value: str | None, lifetime_s: float) -> None:
        self._entries[key_hash] = (time.monotonic() + lifetime_s, value)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key_hash: str) -> None:
        self._entries.pop(key_hash, None)

    def __len__(self) -> int:
        return len(self._entries)


class KeyCache:
    """Remember key lookups for a few seconds so status polling does not hit Postgres every time.

    Valid and unknown keys live in two separate bounded LRU maps: a flood of random keys fills (and
    churns) only the negative map, never evicting the valid keys of real clients, and each map holds
    at most its ``max_*`` entries whatever is sent. An entry never outlives its key's expiry, so an
    expired key is refused on time, not up to ``ttl_s`` late; a revocation is honoured at once by the
    process that revoked (`forget`), by others within ``ttl_s``.
    """

    def __init__(
        self,
        ttl_s: float = 30.0,
        *,
        negative_ttl_s: float = 60.0,
        max_valid: int = 10_000,
        max_unknown: int = 10_000,
    ) -> None:
        self.ttl_s = ttl_s
        self.negative_ttl_s = negative_ttl_s
        self._valid = _Lru(max_valid)
        self._unknown = _Lru(max_unknown)
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, str | None]:
        """(cached?, key id); a cached unknown key is (True, None)."""
        key_hash = _hash(key)
        with self._lock:
            hit, key_id = self._valid.get(key_hash)
            if hit:
                return True, key_id
            hit, _ = self._unknown.get(key_hash)
        return (True, None) if hit else (False, None)

    def put(self, key: str, key_id: str | None, expires_in_s: float | None = None) -> None:
        key_hash = _hash(key)
        with self._lock:
            if key_id is None:
                self._unknown.put(key_hash, None, self.negative_ttl_s)
                return
            lifetime = self.ttl_s if expires_in_s is None else max(0.0, min(self.ttl_s, expires_in_s))
            self._valid.put(key_hash, key_id, lifetime)
            self._unknown.pop(key_hash)

    def forget(self, key_hashes: Iterable[str]) -> None:
        """Drop cached lookups by key hash (the revoke endpoint knows hashes, never keys)."""
        with self._lock:
            for key_hash in key_hashes:
                self._valid.pop(key_hash)

    def sizes(self) -> tuple[int, int]:
        """(valid entries, unknown entries): both bounded by the constructor's maxima."""
        with self._lock:
            return len(self._valid), len(self._unknown)
