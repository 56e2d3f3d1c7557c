"""Per-client rate limits with the `limits` library on the queue Redis (shared by all api processes)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter

from schedgen_ops.service.settings import ServiceSettings

log = logging.getLogger(__name__)
CATEGORIES = ("upload", "status", "requests")


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
    """Fixed-window limits (one INCR per request): uploads, job status polls, other requests, per client.

    A window starts at the client's first request, so the 11th upload within the hour after the first
    is refused until that hour ends (Retry-After says when). Async (redis.asyncio): no thread hop.
    """

    def __init__(self, settings: ServiceSettings, *, timeout_s: float = 1.0) -> None:
        url = settings.redis_url.get_secret_value()
        self.storage = RedisStorage(
            "async+" + url,
            implementation="redispy",
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )
        self.limiter = FixedWindowRateLimiter(self.storage)
        self.items: dict[str, RateLimitItem] = {
            "upload": parse(settings.rate_uploads),
            "status": parse(settings.rate_status),
            "requests": parse(settings.rate_requests),
        }

    async def hit(self, category: str, client_id: str) -> Decision | None:
        """Count one request; None when Redis is unreachable (fail open: availability beats strictness)."""
        item = self.items[category]
        try:
            allowed = await self.limiter.hit(item, category, client_id)
            stats = await self.limiter.get_window_stats(item, category, client_id)
        except Exception as exc:
            log.warning("rate limit storage unavailable, allowing request", extra={"error": str(exc)})
            return None
        return Decision(allowed, item.amount, max(0, stats.remaining), stats.reset_time)
