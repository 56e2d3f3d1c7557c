"""Backup, verify --deep and restore timings for a ledger with 100,000 job rows, on this machine.

    python benchmarks/backup_bench.py [--jobs 100000] [--json out.json]

Starts its own PostgreSQL (default durability settings: fsync on) and Redis (default config) under a
temp dir, fills the service's real schema (`schedgen db migrate`) with jobs (80% completed, each with a
results row holding a timetable of 12 events), then times the real CLI commands. Baselines measured
in the same run: the bare `pg_dump -Fc` and `pg_restore -j 2` of the same database, so the ratios show
what the checks (read-back row counts, checksums, verification, safety backup) cost on top.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from schedgen_ops.ops.backup.tools import tools_for_server
from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, service_tempdir
from schedgen_ops.service import db

FILL_SQL = """
INSERT INTO jobs (id, status, kind, priority, client_id, filename, size_bytes, pages, sha256, storage_key,
                  attempts, max_attempts, started_at, finished_at, expires_at)
SELECT md5('job' || g), CASE WHEN g % 5 = 0 THEN 'queued' ELSE 'completed' END,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'lectures' END, 'default', 'client-' || (g % 500),
       'timetable-' || g || '.pdf', 150000 + g % 1000, 2, md5('bytes' || g), md5('job' || g),
       1, 3, now(), now(), now() + interval '1 day'
FROM generate_series(1, %(n)s) AS g;
INSERT INTO results (job_id, kind, timetable)
SELECT id, 'lectures', jsonb_build_object('kind', 'lectures', 'events',
       (SELECT jsonb_agg(jsonb_build_object('module', 'COS ' || (200 + e), 'activity', 'L' || e,
               'day', 'Monday', 'start', '07:30', 'end', '08:20', 'venue', 'IT 4-' || e,
               'campus', 'Hatfield', 'group', 'G0' || (e % 3)))
        FROM generate_series(1, 12) AS e))
FROM jobs WHERE status = 'completed';
"""


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])} failed ({out.returncode}): {out.stderr[-2000:]}")
    return elapsed, out.stdout


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("jobs", "results")}  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    base = service_tempdir("schedgen-backup-bench-")
    pg = PostgresServer.start(base / "pg")
    rd = RedisServer.start(base / "redis")  # the queue Redis' defaults (AOF on)
    try:
        url = pg.create_database("schedgen")
        db.migrate(url)
        fill_started = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(FILL_SQL.replace("%(n)s", str(int(args.jobs))).encode())
            conn.execute("VACUUM ANALYZE")
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]  # type: ignore[index]
        fill_s = time.perf_counter() - fill_started
        import redis

        client = redis.Redis.from_url(rd.url)
        client.mset({f"rq:job:{n}": "x" * 200 for n in range(1000)})
        client.close()
        original = counts(url)
        with psycopg.connect(url) as conn:
            version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])  # type: ignore[index]
        tools = tools_for_server(version_num // 10000)
        # The project (and its generated secrets, e.g. the backup signing key) lives in the scratch dir.
        env = dict(
            os.environ, SCHEDGEN_DATABASE_URL=url, SCHEDGEN_REDIS_URL=rd.url, SCHEDGEN_PROJECT=str(base)
        )
        backups = base / "backups"

        # Baselines: the bare tools on the same database.
        dump = base / "baseline.dump"
        base_dump_s, _ = timed([tools.path("pg_dump"), "-Fc", "-f", str(dump), "-d", url], env)
        pg.create_database("baseline_restore")
        base_restore_s, _ = timed(
            [tools.path("pg_restore"), "-j", "2", "-d", pg.url_for("baseline_restore"), str(dump)], env
        )
        pg.drop_database("baseline_restore")

        schedgen = [sys.executable, "-m", "schedgen_ops.cli.main"]
        backup_s, out = timed([*schedgen, "backup", "--dir", str(backups), "--json"], env)
        manifest = json.loads(out)
        verify_s, _ = timed(
            [*schedgen, "backup", "verify", manifest["id"], "--deep", "--dir", str(backups)], env
        )
        verify_std_s, _ = timed([*schedgen, "backup", "verify", manifest["id"], "--dir", str(backups)], env)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM jobs WHERE status = 'completed' AND id < '8'")
        damaged = counts(url)
        restore_s, out = timed(
            [*schedgen, "restore", manifest["id"], "--yes", "--dir", str(backups), "--json", "--jobs", "2"],
            env,
        )
        report = json.loads(out)
        restored = counts(url)
        assert restored == original, (restored, original)
        results = {
            "jobs": args.jobs,
            "rows": original,
            "rows_after_damage": damaged,
            "database_bytes": size,
            "dump_bytes": next(f["size"] for f in manifest["files"] if f["kind"] == "postgres"),
            "fill_s": round(fill_s, 2),
            "baseline_pg_dump_s": round(base_dump_s, 2),
            "baseline_pg_restore_j2_s": round(base_restore_s, 2),
            "schedgen_backup_s": round(backup_s, 2),
            "schedgen_verify_s": round(verify_std_s, 2),
            "schedgen_verify_deep_s": round(verify_s, 2),
            "schedgen_restore_s": round(restore_s, 2),
            "restore_postgres_step_s": report["postgres_restore_s"],
            "ratio_backup_vs_pg_dump": round(backup_s / base_dump_s, 2),
            "ratio_verify_deep_vs_pg_restore": round(verify_s / base_restore_s, 2),
            "ratio_restore_vs_pg_restore": round(restore_s / base_restore_s, 2),
            "restore_target_s": 3600,
            "restore_share_of_target": round(restore_s / 3600, 4),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
            "postgres": tools.version("pg_dump"),
        }
    finally:
        rd.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)

    width = max(len(k) for k in results)
    for key, value in results.items():
        print(f"{key:<{width}}  {value}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
