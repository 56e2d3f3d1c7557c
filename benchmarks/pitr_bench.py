"""Point-in-time recovery benchmark: PITR restore vs pg_restore of the same jobs, and archiving's overhead.

In one run, on this machine, against 127.0.0.1 only:
1. restore: a Postgres archiving WAL through pgBackRest (async archive-push, lz4, encrypted local
   repository) takes a full backup of the empty ledger, then receives N completed jobs (each with its
   result row) - so the PITR restore is base backup + replay of every job from archived WAL. The same
   data is dumped with `pg_dump -Fc`. Timed: `pgbackrest restore` + recovery of a scratch server until it
   is promoted, against `createdb` + `pg_restore -j 2` into a fresh database (the pg_dump sets' path).
2. overhead: `benchmarks/pipeline_bench.py`'s end-to-end phase (real api, Redis, workers, real PDFs)
   with Postgres archiving WAL through pgBackRest against the same stack without archiving, in
   alternating rounds so both see the same share of a busy machine.

    python benchmarks/pitr_bench.py                       # 100,000 jobs; 2 overhead rounds of 150 jobs
    python benchmarks/pitr_bench.py --jobs 20000 --json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg

from schedgen_ops.config import load_config
from schedgen_ops.ops.backup.pgbackrest import PitrSite
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget, recovered, remove_tree, restore_files
from schedgen_ops.render.pitr import archive_command
from schedgen_ops.runtime.dataservices import PostgresServer, free_port, service_tempdir
from schedgen_ops.service import db

REPO = Path(__file__).resolve().parent.parent

FILL_SQL = (
    """
INSERT INTO jobs (id, status, kind, priority, client_id, filename, size_bytes, pages, sha256, storage_key,
                  attempts, max_attempts, started_at, finished_at, bytes_deleted, expires_at)
SELECT md5('job' || g), 'completed', 'lectures', 'default', 'client-' || (g %% 97),
       'timetable ' || g || '.pdf',
       40000 + g %% 5000, 1 + g %% 4,
       md5('sha' || g) || md5('sha2' || g), md5('job' || g), 1, 3, now(), now(),
       true, now() + interval '1 day'
FROM generate_series(%(start)s::int, %(stop)s::int) AS g
""",
    """
INSERT INTO results (job_id, kind, timetable)
SELECT md5('job' || g), 'lectures',
       jsonb_build_object('events', jsonb_build_array(
           jsonb_build_object('module', 'COS ' || (200 + g %% 90), 'day', 'Monday', 'start', '08:30',
                              'end', '09:20', 'venue', 'IT 4-1', 'group', 'G0' || (g %% 9)),
           jsonb_build_object('module', 'STK 220', 'day', 'Tuesday', 'start', '10:30', 'end', '11:20',
                              'venue', 'Thuto 1-2', 'group', 'G01')))
FROM generate_series(%(start)s::int, %(stop)s::int) AS g
""",
)


def _site(base: Path, port: int) -> PitrSite:
    project = base / "project"
    project.mkdir(exist_ok=True)
    (project / "schedgen.yaml").write_text("profile: small\nbackup: {pitr: {enabled: true}}\n")
    config = load_config(project)
    state = base / "pgbr"
    paths = {k: str(state / k) for k in ("repo", "spool", "lock", "log")}
    paths.update(base=str(state), conf=str(state / "pgbackrest.conf"))
    return PitrSite(
        config=config,
        stanza="bench",
        paths=paths,
        pg_data=base / "pg",
        pg_port=port,
        superuser_password="",
        cipher_pass="bench-cipher-pass-not-secret",
    )


def _archiving(site: PitrSite, timeout_s: int = 60) -> dict[str, str]:
    return {
        "wal_level": "replica",
        "archive_mode": "on",
        "archive_command": archive_command(site.paths["conf"], site.stanza),
        "archive_timeout": f"{timeout_s}s",
    }


def _start(site: PitrSite, archive: bool) -> PostgresServer:
    site.write_conf()
    settings = _archiving(site) if archive else {}
    return PostgresServer.start(site.pg_data, site.pg_port, settings=settings)


def _fill(url: str, jobs: int, batch: int = 10000) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for start in range(1, jobs + 1, batch):
            for statement in FILL_SQL:
                conn.execute(statement, {"start": start, "stop": min(jobs, start + batch - 1)})


def restore_comparison(jobs: int) -> dict[str, Any]:
    base = service_tempdir("schedgen-pitr-bench-")
    site = _site(base, free_port())
    server = _start(site, archive=True)
    try:
        server.create_database("schedgen")
        url = server.url_for("schedgen")
        db.migrate(url)
        site.run("stanza-create", what="stanza-create")
        site.run("backup", "--type=full", what="full backup")
        clock = time.monotonic()
        _fill(url, jobs)
        fill_s = time.monotonic() - clock
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("SELECT pg_switch_wal()")
        site.run("check", what="archive check")  # waits until the last segment is in the repository
        dump = base / "jobs.dump"
        bindir = server.bindir
        clock = time.monotonic()
        subprocess.run(
            [str(bindir / "pg_dump"), "-Fc", "-f", str(dump), url], check=True, capture_output=True
        )
        dump_s = time.monotonic() - clock

        # PITR: restore + recovery into a scratch directory (what `restore --to latest` does first).
        scratch = base / "scratch"
        clock = time.monotonic()
        restore_files(site, scratch, RecoveryTarget(None))
        files_s = time.monotonic() - clock
        with (
            recovered(scratch, max_connections=100) as restored,
            psycopg.connect(restored.url_for("schedgen")) as conn,
        ):
            pitr_s = time.monotonic() - clock
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
            pitr_jobs = int(row[0]) if row else -1
        remove_tree(scratch)

        # pg_dump set's path: a fresh database, then pg_restore -j 2.
        clock = time.monotonic()
        server.create_database("restored")
        subprocess.run(
            [
                str(bindir / "pg_restore"),
                "-j",
                "2",
                "--no-owner",
                "-d",
                server.url_for("restored"),
                str(dump),
            ],
            check=True,
            capture_output=True,
        )
        pg_restore_s = time.monotonic() - clock
        with psycopg.connect(server.url_for("restored")) as conn:
            row = conn.execute("SELECT count(*) FROM jobs").fetchone()
            dump_jobs = int(row[0]) if row else -1
        wal = sum(p.stat().st_size for p in Path(site.paths["repo"]).rglob("*") if p.is_file())
        dump_bytes = dump.stat().st_size
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return {
        "jobs": jobs,
        "fill_s": round(fill_s, 2),
        "pg_dump_s": round(dump_s, 2),
        "dump_bytes": dump_bytes,
        "repo_bytes": wal,
        "pitr_restore_files_s": round(files_s, 2),
        "pitr_restore_total_s": round(pitr_s, 2),
        "pitr_jobs": pitr_jobs,
        "pg_restore_s": round(pg_restore_s, 2),
        "pg_restore_jobs": dump_jobs,
        "pitr_vs_pg_restore": round(pitr_s / pg_restore_s, 3),
    }


def _pipeline_module() -> Any:
    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "benchmarks" / "pipeline_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def overhead(rounds: int, jobs: int, processes: int) -> dict[str, Any]:
    """pipeline_bench's end-to-end rate with and without WAL archiving, alternating."""
    pb = _pipeline_module()
    files, source = pb.load_files()
    plain_start = PostgresServer.start

    def run(archive: bool) -> float:
        holder: dict[str, Any] = {}

        def start(data_dir: Path, port: int | None = None, **kwargs: Any) -> PostgresServer:
            site = _site(Path(data_dir).parent, port or free_port())
            holder["site"] = site
            site.write_conf()
            server = plain_start(site.pg_data, site.pg_port, settings=_archiving(site) if archive else {})
            if archive:
                site.run("stanza-create", what="stanza-create")
            return server

        pb.PostgresServer.start = staticmethod(start)
        try:
            service = pb.Service(processes, 2)
        finally:
            pb.PostgresServer.start = plain_start
        try:
            service.start_workers()
            pb.end_to_end(service, files, 20)  # warm-up
            rate = float(pb.end_to_end(service, files, jobs)["per_min"])
            if archive:
                with psycopg.connect(service.pg.url, autocommit=True) as conn:
                    conn.execute("SELECT pg_switch_wal()")
                    deadline, row = time.monotonic() + 60, None
                    while time.monotonic() < deadline:
                        row = conn.execute(
                            "SELECT archived_count, failed_count FROM pg_stat_archiver"
                        ).fetchone()
                        if row is not None and row[0] > 0:
                            break
                        time.sleep(0.5)
                assert row is not None and row[0] > 0 and row[1] == 0, f"archiving did not work: {row}"
        finally:
            service.stop()
        return rate

    results: list[dict[str, Any]] = []
    for n in range(rounds):
        # ABBA order: the stack started second in a round ran faster in every round of an AB-only run.
        order = (False, True) if n % 2 == 0 else (True, False)
        rates = {archive: round(run(archive), 1) for archive in order}
        results.append(
            {"plain_per_min": rates[False], "archiving_per_min": rates[True], "archiving_first": order[0]}
        )
    plain = statistics.median(r["plain_per_min"] for r in results)
    archiving = statistics.median(r["archiving_per_min"] for r in results)
    return {
        "files": source,
        "jobs_per_round": jobs,
        "rounds": results,
        "plain_per_min": plain,
        "archiving_per_min": archiving,
        "overhead": round(1 - archiving / plain, 3),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs restored (default 100,000)")
    parser.add_argument("--rounds", type=int, default=2, help="overhead rounds (default 2)")
    parser.add_argument(
        "--pipeline-jobs", type=int, default=150, help="PDFs per overhead round (default 150)"
    )
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--skip-overhead", action="store_true", help="only the restore comparison")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if shutil.which("pgbackrest") is None:
        print("pgbackrest is not installed (apt-get install -y pgbackrest)", file=sys.stderr)
        return 1
    out: dict[str, Any] = {"cpus": os.cpu_count(), "load_avg_1m_start": round(os.getloadavg()[0], 2)}
    out["restore"] = restore_comparison(args.jobs)
    if not args.skip_overhead:
        out["overhead"] = overhead(args.rounds, args.pipeline_jobs, args.processes)
    out["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    r = out["restore"]
    print(f"{os.cpu_count()} CPUs; load average {out['load_avg_1m_start']} -> {out['load_avg_1m_end']}")
    print(
        f"restore of {r['jobs']} jobs: PITR (pgbackrest restore + WAL replay) {r['pitr_restore_total_s']} s "
        f"({r['pitr_jobs']} jobs) vs pg_restore -j 2 {r['pg_restore_s']} s ({r['pg_restore_jobs']} jobs): "
        f"ratio {r['pitr_vs_pg_restore']}"
    )
    if "overhead" in out:
        o = out["overhead"]
        print(
            f"pipeline end to end: {o['plain_per_min']} jobs/min without archiving, {o['archiving_per_min']} "
            f"with: overhead {o['overhead']:.1%} (goal <= 5%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
