"""Who is calling: the ops token (`is_ops`, `require_ops`) and the client id every request is counted
under (`identify`: an API key's id, else the caller's address)."""

from __future__ import annotations

import hmac

import psycopg
from fastapi import Request
from psycopg_pool import PoolTimeout
from starlette.concurrency import run_in_threadpool

from schedgen_ops.service import clients
from schedgen_ops.service.api_errors import ApiError
from schedgen_ops.service.api_state import ApiState, State
from schedgen_ops.service.clients import Network, client_bucket, client_ip
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.settings import ServiceSettings

OPS_ONLY = "this endpoint needs the ops token (Authorization: Bearer ...)"


def is_ops(settings: ServiceSettings, request: Request) -> bool:
    token = settings.ops_token.get_secret_value()
    given = request.headers.get("authorization", "")
    return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())


def require_ops(request: Request, state: State) -> None:
    """Dependency of ops-only routes: runs before body validation, so strangers learn nothing."""
    if not is_ops(state.settings, request):
        raise ApiError(401, "unauthorized", OPS_ONLY)


async def identify(request: Request, trusted: list[Network], state: ApiState | None) -> str:
    """``key:<id>`` for a valid API key, else ``ip:<address or IPv6 /64>``; without ``state`` (health and
    metrics) the key is never looked at: a probe must not depend on the database or on a client's header.

    A key that is not cached as valid costs its address one of ``rate_key_failures`` when a
    database lookup finds it unknown; once they are used up, keys from that address get 429 before
    any lookup. Known unknown keys (a bounded negative cache) and malformed keys are refused without
    a lookup and cost nothing, so junk sent from behind a campus NAT cannot use up the budget of
    the students who share its address.
    """
    peer = request.client.host if request.client else None
    address = client_bucket(client_ip(peer, request.headers.getlist("x-forwarded-for"), trusted))
    key = request.headers.get("x-api-key") if state is not None else None
    if not key or state is None:
        return "ip:" + address
    keys, limits = state.keys, state.limits
    hit, key_id = keys.get(key)
    if key_id is not None:
        return f"key:{key_id}"
    looked_up = False
    blocked = await limits.exhausted("key_failures", "ip:" + address)
    if blocked is None and not hit and clients.well_formed(key):
        async with state.lookups:
            blocked = await limits.exhausted("key_failures", "ip:" + address)
            if blocked is None:
                try:
                    valid = await run_in_threadpool(_lookup, state.ctx, key)
                except (psycopg.Error, PoolTimeout) as exc:
                    raise ApiError(
                        503, "database_unavailable", "cannot verify the API key right now"
                    ) from exc
                looked_up = True
                key_id = valid.id if valid else None
                keys.put(key, key_id, valid.expires_in_s if valid else None)
    if blocked is not None:
        raise ApiError(
            429,
            "rate_limited",
            "too many unknown API keys from this address; retry later",
            blocked.headers(),
        )
    if key_id is None:
        if looked_up:
            await limits.hit("key_failures", "ip:" + address)
        raise ApiError(401, "invalid_api_key", "the API key is unknown, revoked or expired")
    return f"key:{key_id}"


def _lookup(ctx: ServiceContext, key: str) -> clients.ValidKey | None:
    with ctx.pool.connection() as conn:
        return clients.check_key(conn, key)
