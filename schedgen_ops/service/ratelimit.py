"""Per-client rate limits with the `limits` library on the queue Redis (shared by all api processes).

When Redis does not answer, the same limits are counted in this process (`limits`' MemoryStorage), so
uploads stay limited through a Redis outage instead of failing open. Redis is then retried at most once
every ``retry_s`` (one probe at a time), so an outage costs a request at most one connect timeout per
probe, not one per request. Fallback counts are per api process and start from zero: during an outage
a client may get up to (api processes x limit).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.exceptions import NoScriptError

from schedgen_ops.service.settings import ServiceSettings

log = logging.getLogger(__name__)
CATEGORIES = ("upload", "status", "requests", "key_failures")
T = TypeVar("T")
_MAX_CACHED_KEYS = 10_000
# limits' incr_expire.lua (a window starts at its first hit), returning the key's TTL with the count.
_INCR_TTL = """
local amount = tonumber(ARGV[2])
local current = redis.call("incrby", KEYS[1], amount)
if tonumber(current) == amount then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("ttl", KEYS[1])}
"""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: float  # epoch seconds when the window ends

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_at)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.reset_at - time.time())))
        return headers


class RateLimits:
    """Fixed-window limits (one script call per request on Redis): uploads, job status polls, other requests,
    per client, and failed API-key attempts per address (checked before any key lookup).

    A window starts at the client's first request, so the 11th upload within the hour after the first
    is refused until that hour ends (Retry-After says when). Async (redis.asyncio): no thread hop.
    """

    def __init__(self, settings: ServiceSettings, *, timeout_s: float = 1.0, retry_s: float = 5.0) -> None:
        url = settings.redis_url.get_secret_value()
        self.storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self.limiter = FixedWindowRateLimiter(self.storage)
        bridge = getattr(self.storage, "bridge", None)  # limits' redis-py bridge (limits >= 5)
        self._incr_ttl: Any = None
        self._redis_key: Callable[[str], str] = str
        if bridge is not None and hasattr(bridge, "prefixed_key"):
            self._incr_ttl = bridge.get_connection().register_script(_INCR_TTL)
            self._redis_key = bridge.prefixed_key
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        # (category, client) -> (limits' key, its Redis key): building them is a visible share of a poll.
        self._keys: dict[tuple[str, str], tuple[str, str]] = {}
        self.retry_s = retry_s
        self._down_since: float | None = None  # monotonic time Redis stopped answering
        self._next_probe = 0.0
        self._probing = False
        self.items: dict[str, RateLimitItem] = {
            "upload": parse(settings.rate_uploads),
            "status": parse(settings.rate_status),
            "requests": parse(settings.rate_requests),
            "key_failures": parse(settings.rate_key_failures),
        }

    @property
    def degraded(self) -> bool:
        """True while limits are counted in this process because Redis does not answer."""
        return self._down_since is not None

    async def hit(self, category: str, client_id: str) -> Decision:
        """Count one request of ``client_id`` in ``category``; ``allowed`` False once over the limit."""
        decision, _ = await self.hit_with(category, client_id, None)
        return decision

    async def hit_with(
        self, category: str, client_id: str, also: Callable[[Any], None] | None
    ) -> tuple[Decision, list[Any] | None]:
        """`hit`, with the commands ``also`` queues on a pipeline sent in the same round trip as the limit's
        script; their replies (an error as an exception object), or None when Redis did not count this hit
        (degraded: the in-process fallback counted it) or ``also`` is None."""
        item = self.items[category]

        async def count(limiter: FixedWindowRateLimiter) -> tuple[Decision, list[Any] | None]:
            # What limiter.hit + get_window_stats do (INCR, GET, TTL), in one round trip on Redis (the
            # same script and key as `limits`, plus the TTL) and two calls on the in-process fallback.
            key, redis_key = self._key(item, category, client_id)
            replies: list[Any] | None = None
            if limiter is self.limiter and self._incr_ttl is not None:
                if also is None:
                    used, ttl = await self._incr_ttl(keys=[redis_key], args=[item.get_expiry(), 1])
                else:
                    (used, ttl), replies = await self._incr_ttl_and(redis_key, item, also)
                used, reset_at = int(used), max(int(ttl), 0) + time.time()
            else:
                used = await limiter.storage.incr(key, item.get_expiry(), amount=1)
                reset_at = await limiter.storage.get_expiry(key)
            return Decision(used <= item.amount, item.amount, max(0, item.amount - used), reset_at), replies

        return await self._with_storage(count)

    async def _incr_ttl_and(
        self, redis_key: str, item: RateLimitItem, also: Callable[[Any], None]
    ) -> tuple[Any, list[Any]]:
        """The limit's script by its SHA and ``also``'s commands in one pipeline (no SCRIPT EXISTS, which
        redis-py sends before a pipeline holding a `Script`); a Redis that lost the script (restarted)
        gets it through the plain call, which loads it."""
        pipe = self._incr_ttl.registered_client.pipeline(transaction=False)
        pipe.evalsha(self._incr_ttl.sha, 1, redis_key, item.get_expiry(), 1)
        also(pipe)
        counted, *replies = await pipe.execute(raise_on_error=False)
        if isinstance(counted, NoScriptError):
            counted = await self._incr_ttl(keys=[redis_key], args=[item.get_expiry(), 1])
        elif isinstance(counted, Exception):
            raise counted
        return counted, replies

    def _key(self, item: RateLimitItem, category: str, client_id: str) -> tuple[str, str]:
        """`limits`' key of this client's window in ``category`` and the Redis key it is stored under."""
        keys = self._keys.get((category, client_id))
        if keys is None:
            key = item.key_for(category, client_id)
            keys = (key, self._redis_key(key))
            if len(self._keys) >= _MAX_CACHED_KEYS:
                self._keys.clear()  # bounded: clients come and go; rebuilding a key is cheap
            self._keys[(category, client_id)] = keys
        return keys

    async def exhausted(self, category: str, client_id: str) -> Decision | None:
        """The refusal when ``client_id`` has nothing left in ``category``, else None (counts nothing)."""
        item = self.items[category]

        async def check(limiter: FixedWindowRateLimiter) -> Decision | None:
            if await limiter.test(item, category, client_id):
                return None
            return await self._decision(limiter, item, category, client_id, False)

        return await self._with_storage(check)

    @staticmethod
    async def _decision(
        limiter: FixedWindowRateLimiter, item: RateLimitItem, category: str, client_id: str, allowed: bool
    ) -> Decision:
        stats = await limiter.get_window_stats(item, category, client_id)
        return Decision(allowed, item.amount, max(0, stats.remaining), stats.reset_time)

    async def _with_storage(self, op: Callable[[FixedWindowRateLimiter], Awaitable[T]]) -> T:
        """Run ``op`` on Redis when it answers (or is due a probe), else on the in-process fallback."""
        now = time.monotonic()
        if self._down_since is not None and (self._probing or now < self._next_probe):
            return await op(self.fallback)
        probe = self._down_since is not None
        self._probing = probe
        try:
            result = await op(self.limiter)
        except Exception as exc:
            if self._down_since is None:
                self._down_since = now
                log.warning(
                    "rate limit storage unavailable; limiting in this process until Redis answers",
                    extra={"error": type(exc).__name__},
                )
            self._next_probe = time.monotonic() + self.retry_s
            return await op(self.fallback)
        finally:
            if probe:
                self._probing = False
        if self._down_since is not None:
            log.warning(
                "rate limit storage answers again",
                extra={"outage_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None
        return result
