"""One reconciler pass over a large queued backlog, on real PostgreSQL and Redis started here.

    python benchmarks/reconcile_bench.py [--jobs 100000] [--baseline-jobs 10000] [--json out.json]

Starts its own PostgreSQL and Redis (the queue's defaults: AOF on, noeviction) under a temp dir, fills the
service's real schema (`schedgen db migrate`) with ``--jobs`` queued jobs, enqueues them all in RQ, and
times `reconcile_once`:
- steady: every queued job is on its RQ list (the pass only checks; median of 3 passes);
- lost: Redis was flushed: the first pass (it re-enqueues at most REQUEUE_PER_PASS, oldest first) and the
  run of passes until every job is back (each resuming where the previous stopped, as `run_forever` does).
Baseline in the same run: the reconciler of ``--baseline-rev`` (default: the commit before batching, per-job
RQ fetch + LPOS + per-job clean-up), extracted with `git archive` and run in a subprocess on
``--baseline-jobs`` jobs, next to the current code on the same number of jobs. The baseline is not run on
the full backlog: its LPOS per job makes it quadratic (see docs/PERFORMANCE.md, "Reconciler").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import redis
from pydantic import SecretStr

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, service_tempdir
from schedgen_ops.service import db, queue
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.ledger import Cursor
from schedgen_ops.service.reconciler import ReconcileReport, reconcile_once
from schedgen_ops.service.settings import ServiceSettings

REPO = Path(__file__).resolve().parent.parent
BASELINE_REV = "942a124"  # main before the batched reconciler (issue 13, item 8)
TARGET_S = 5.0
ENQUEUE_CHUNK = 5000

SEED_SQL = """
INSERT INTO jobs (id, status, priority, client_id, filename, size_bytes, pages, sha256, storage_key,
                  max_attempts, created_at, updated_at)
SELECT md5(%(tag)s || g), 'queued', 'default', 'client-' || (g %% 500), 'timetable-' || g || '.pdf',
       150000 + g %% 1000, 2, md5('bytes' || g), md5(%(tag)s || g), 3,
       now() - interval '1 hour' + g * interval '1 millisecond', now() - interval '1 hour'
FROM generate_series(1, %(n)s) AS g
"""

# Runs inside the baseline checkout: one timed pass of its reconcile_once, printed as JSON.
BASELINE_SCRIPT = """
import json, sys, time
import schedgen_ops
from schedgen_ops.service.config import load_settings
from schedgen_ops.service.context import ServiceContext
from schedgen_ops.service.reconciler import reconcile_once
ctx = ServiceContext.create(load_settings(), name="baseline")
ctx.pool.wait()
started = time.perf_counter()
report = reconcile_once(ctx)
print(json.dumps({"seconds": time.perf_counter() - started, "requeued": len(report.requeued),
                  "module": schedgen_ops.__file__}))
ctx.close()
"""


def settings(url: str, redis_url: str, uploads: Path) -> ServiceSettings:
    return ServiceSettings(  # type: ignore[call-arg]  # the rest from defaults
        database_url=SecretStr(url), redis_url=SecretStr(redis_url), storage_url=f"file://{uploads}"
    )


def fill(url: str, ctx: ServiceContext, n: int, tag: str) -> float:
    """Seed ``n`` queued jobs and enqueue them all; returns the enqueue time (s)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_SQL, {"tag": tag, "n": n})
        conn.execute("VACUUM ANALYZE jobs")
        ids = [row[0] for row in conn.execute("SELECT id FROM jobs WHERE status = 'queued'")]
    started = time.perf_counter()
    for i in range(0, len(ids), ENQUEUE_CHUNK):
        queue.enqueue_many(ctx.redis, ctx.settings, [(j, "default") for j in ids[i : i + ENQUEUE_CHUNK]])
    return time.perf_counter() - started


def timed_pass(ctx: ServiceContext, resume: Cursor | None = None) -> tuple[float, ReconcileReport]:
    """(seconds, report) of one pass."""
    started = time.perf_counter()
    report = reconcile_once(ctx, resume_after=resume)
    return time.perf_counter() - started, report


def measure_current(url: str, redis_url: str, uploads: Path, n: int, tag: str) -> dict[str, Any]:
    """The current reconciler on a freshly migrated database with ``n`` queued jobs.

    steady: median of 3 passes with every job in Redis; lost: after a flush, the first pass (it requeues
    at most REQUEUE_PER_PASS) and the passes until every job is back (summed).
    """
    db.migrate(url)
    ctx = ServiceContext.create(settings(url, redis_url, uploads), name="bench")
    try:
        ctx.pool.wait()
        enqueue_s = fill(url, ctx, n, tag)
        steady = []
        for _ in range(3):
            seconds, report = timed_pass(ctx)
            if report.requeued:
                sys.exit(f"a steady pass requeued {len(report.requeued)} jobs, expected none")
            steady.append(seconds)
        ctx.redis.flushdb()
        # As run_forever does: a limited pass is followed at once by the next, resuming where it stopped.
        passes = [timed_pass(ctx)]
        while passes[-1][1].requeue_limited:
            passes.append(timed_pass(ctx, passes[-1][1].resume_after))
        requeued = sum(len(report.requeued) for _, report in passes)
        if requeued != n:
            sys.exit(f"passes after the flush requeued {requeued} jobs, expected {n}")
        return {
            "enqueue_s": enqueue_s,
            "steady_s": statistics.median(steady),
            "first_lost_pass_s": passes[0][0],
            "first_lost_pass_requeued": len(passes[0][1].requeued),
            "all_lost_s": sum(seconds for seconds, _ in passes),
            "lost_passes": len(passes),
        }
    finally:
        ctx.close()


def baseline_tree(rev: str, into: Path) -> Path:
    """The package at ``rev`` (git archive), importable from ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "schedgen_ops"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        sys.exit(f"git archive {rev} failed: {archive.stderr.decode().strip()} (pass --baseline-rev)")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def baseline_pass(tree: Path, url: str, redis_url: str, uploads: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    env.update(
        {
            "PYTHONPATH": str(tree),
            "SCHEDGEN_DATABASE_URL": url,
            "SCHEDGEN_REDIS_URL": redis_url,
            "SCHEDGEN_STORAGE_URL": f"file://{uploads}",
        }
    )
    out = subprocess.run(
        [sys.executable, "-c", BASELINE_SCRIPT],
        env=env,
        cwd=tree,  # not the repository: `python -c` puts the working directory first on sys.path
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        sys.exit(f"baseline pass failed: {out.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if not str(result["module"]).startswith(str(tree)):
        sys.exit(f"baseline imported {result['module']}, not the checkout in {tree}")
    return result


def measure_baseline(
    pg: PostgresServer, rd: RedisServer, uploads: Path, n: int, rev: str, tmp: Path
) -> dict[str, Any]:
    """Old and current code on the same ``n`` jobs (fresh database and Redis db for each)."""
    tree = baseline_tree(rev, tmp / "baseline")
    url = pg.create_database("baseline")
    db.migrate(url)
    redis_url = rd.url_for(2)
    ctx = ServiceContext.create(settings(url, redis_url, uploads), name="bench")
    try:
        ctx.pool.wait()
        fill(url, ctx, n, "base")
    finally:
        ctx.close()
    old_steady = baseline_pass(tree, url, redis_url, uploads)
    redis.Redis.from_url(redis_url).flushdb()
    old_lost = baseline_pass(tree, url, redis_url, uploads)
    if old_steady["requeued"] != 0 or old_lost["requeued"] != n:
        sys.exit(f"baseline requeued {old_steady['requeued']} / {old_lost['requeued']}, expected 0 / {n}")
    pg.drop_database("baseline")
    redis.Redis.from_url(redis_url).flushdb()
    current = measure_current(pg.create_database("current"), redis_url, uploads, n, "cur")
    pg.drop_database("current")
    return {
        "jobs": n,
        "rev": rev,
        "old_steady_s": old_steady["seconds"],
        "old_lost_s": old_lost["seconds"],
        "new_steady_s": current["steady_s"],
        "new_lost_s": current["all_lost_s"],
        "new_lost_passes": current["lost_passes"],
        "speedup_steady": old_steady["seconds"] / current["steady_s"],
        "speedup_lost": old_lost["seconds"] / current["all_lost_s"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="queued jobs for the main measurement")
    parser.add_argument("--baseline-jobs", type=int, default=10_000, help="jobs for old vs new (0: skip)")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old reconciler")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    base = service_tempdir("schedgen-reconcile-bench-")
    pg = PostgresServer.start(base / "pg")
    rd = RedisServer.start(base / "redis")
    uploads = base / "uploads"
    uploads.mkdir()
    try:
        url = pg.create_database("bench")
        main_run = measure_current(url, rd.url_for(1), uploads, args.jobs, "main")
        comparison = None
        if args.baseline_jobs:
            with tempfile.TemporaryDirectory(dir=base) as tmp:
                comparison = measure_baseline(
                    pg, rd, uploads, args.baseline_jobs, args.baseline_rev, Path(tmp)
                )
    finally:
        rd.stop()
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)

    figures: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs,"
        f" load average {load_before:.1f} before / {os.getloadavg()[0]:.1f} after",
        "jobs": args.jobs,
        **{k: round(v, 3) if isinstance(v, float) else v for k, v in main_run.items()},
        "target_s": TARGET_S,
        "baseline": {k: round(v, 3) if isinstance(v, float) else v for k, v in (comparison or {}).items()},
    }
    print(f"machine: {figures['machine']}")
    print(f"{args.jobs} queued jobs (enqueueing them all took {main_run['enqueue_s']:.2f} s)")
    verdict = "meets" if main_run["steady_s"] < TARGET_S else "MISSES"
    print(f"  steady pass (all in Redis): {main_run['steady_s']:.2f} s ({verdict} the {TARGET_S:g} s target)")
    verdict = "meets" if main_run["first_lost_pass_s"] < TARGET_S else "MISSES"
    print(
        f"  after a Redis flush: first pass {main_run['first_lost_pass_s']:.2f} s"
        f" ({main_run['first_lost_pass_requeued']} requeued, the per-pass limit; {verdict} the target),"
        f" all back after {main_run['lost_passes']} passes, {main_run['all_lost_s']:.2f} s of passes in all"
    )
    if comparison:
        n = comparison["jobs"]
        print(f"old ({comparison['rev']}) vs new on {n} jobs, same run:")
        print(
            f"  steady: old {comparison['old_steady_s']:.2f} s, new {comparison['new_steady_s']:.2f} s,"
            f" {comparison['speedup_steady']:.1f}x faster"
        )
        print(
            f"  requeue all after a flush: old {comparison['old_lost_s']:.2f} s (1 pass),"
            f" new {comparison['new_lost_s']:.2f} s ({comparison['new_lost_passes']} passes),"
            f" {comparison['speedup_lost']:.1f}x faster"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    ok = main_run["steady_s"] < TARGET_S and main_run["first_lost_pass_s"] < TARGET_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
