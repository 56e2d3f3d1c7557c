"""redis: reachable, used memory vs maxmemory, eviction policy, AOF enabled and last write ok.

The queue Redis must never evict: any policy but ``noeviction`` silently drops queued jobs, so it is
critical, not a warning.
"""

from __future__ import annotations

import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from schedgen_ops.config.health import HealthThresholds
from schedgen_ops.ops.health.endpoints import redact
from schedgen_ops.ops.health.model import CheckResult, Level, Status, judged, passed
from schedgen_ops.ops.health.runner import ProbeContext

C = "redis"


def client(url: str, ctx: ProbeContext) -> redis.Redis:
    """A single-connection client with socket timeouts from the deadline and no retries."""
    timeout = ctx.deadline.remaining()
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        max_connections=1,
    )


def failure_hint(exc: redis.RedisError) -> str:
    if isinstance(exc, redis.TimeoutError):
        return "Redis accepts connections but does not answer: check its CPU, memory and log"
    if isinstance(exc, redis.AuthenticationError | redis.ResponseError) and "auth" in str(exc).lower():
        return "Redis refused the password: check SCHEDGEN_REDIS_URL against .schedgen/secrets.env"
    return (
        "Redis is down or unreachable: the api cannot enqueue and workers are idle; start it "
        "(`schedgen up` / `schedgen status`) and check its log"
    )


def missing_url(ctx: ProbeContext, component: str, name: str) -> list[CheckResult]:
    """What a Redis probe reports without a Redis URL: unknown, and where the URL comes from."""
    how = ctx.endpoints.notes.get("redis_url", "--redis-url or SCHEDGEN_REDIS_URL")
    return [CheckResult(component, name, Status.UNKNOWN, "no Redis URL", hint=f"pass {how}")]


def unreachable(component: str, name: str, url: str, exc: redis.RedisError, threshold: str) -> CheckResult:
    """What a Redis probe reports when Redis fails it: critical, the redacted URL, the error and its hint."""
    measured = f"{redact(url)}: {type(exc).__name__}: {exc}"[:200]
    return CheckResult(
        component, name, Status.CRITICAL, measured, threshold=threshold, hint=failure_hint(exc)
    )


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def probe(ctx: ProbeContext) -> list[CheckResult]:
    url = ctx.endpoints.redis_url
    th = ctx.thresholds
    if not url:
        return missing_url(ctx, C, "reachable")
    conn = client(url, ctx)
    try:
        begin = time.monotonic()
        try:
            conn.ping()
        except redis.RedisError as exc:
            return [unreachable(C, "reachable", url, exc, "answers PING")]
        ms = (time.monotonic() - begin) * 1000
        results = [
            CheckResult(
                C,
                "reachable",
                Status.OK,
                f"PING {ms:.1f} ms",
                value=round(ms, 2),
                unit="ms",
                threshold="answers PING",
            )
        ]
        memory = conn.info("memory")
        persistence = conn.info("persistence")
    except redis.RedisError as exc:
        return [
            CheckResult(C, "reachable", Status.CRITICAL, f"INFO failed: {exc}"[:200], hint=failure_hint(exc))
        ]
    finally:
        conn.close()
    results.append(_memory(memory, th))
    results.append(_eviction(memory))
    results.extend(_aof(persistence))
    return results


def _memory(memory: dict[str, Any], th: HealthThresholds) -> CheckResult:
    used = int(memory.get("used_memory", 0))
    limit = int(memory.get("maxmemory", 0))
    basis = "maxmemory"
    if limit == 0:
        limit = int(memory.get("total_system_memory", 0))
        basis = "system memory (no maxmemory set)"
    level = Level(th.redis_memory_warn_ratio, th.redis_memory_critical_ratio)
    if limit <= 0:
        return CheckResult(
            C,
            "memory",
            Status.UNKNOWN,
            f"{_human(used)} used, no limit known",
            hint="set maxmemory for the queue Redis (`schedgen config`)",
        )
    ratio = used / limit
    return judged(
        C,
        "memory",
        level,
        ratio,
        f"{_human(used)} of {_human(limit)} {basis} ({ratio:.0%})",
        value=round(ratio, 4),
        unit="ratio",
        hint="queue Redis is filling up: with noeviction, writes (enqueues) fail when full; drain the "
        "backlog (more workers) or raise maxmemory",
    )


def _eviction(memory: dict[str, Any]) -> CheckResult:
    policy = str(memory.get("maxmemory_policy", "unknown"))
    ok = policy == "noeviction"
    return passed(
        C,
        "eviction_policy",
        ok,
        policy,
        value=policy,
        threshold="noeviction",
        hint="this policy silently evicts queued jobs: `CONFIG SET maxmemory-policy noeviction` now, "
        "then fix the rendered redis config and redeploy",
    )


def _aof(persistence: dict[str, Any]) -> list[CheckResult]:
    enabled = int(persistence.get("aof_enabled", 0)) == 1
    results = [
        passed(
            C,
            "aof_enabled",
            enabled,
            "yes" if enabled else "no",
            value=enabled,
            threshold="appendonly yes",
            failing=Status.WARN,
            hint="without AOF a Redis restart drops queued jobs until the reconciler re-enqueues them: "
            "`CONFIG SET appendonly yes` and fix the rendered config",
        )
    ]
    if enabled:
        status_text = str(persistence.get("aof_last_write_status", "unknown"))
        rewrite = str(persistence.get("aof_last_bgrewrite_status", "ok"))
        ok = status_text == "ok" and rewrite == "ok"
        results.append(
            passed(
                C,
                "aof_last_write",
                ok,
                f"write {status_text}, rewrite {rewrite}",
                value=status_text,
                threshold="ok",
                hint="Redis cannot write its AOF (disk full or permissions): free disk on the Redis volume; "
                "see the Redis log",
            )
        )
    return results
