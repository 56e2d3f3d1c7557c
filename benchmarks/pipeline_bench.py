"""Parsing service pipeline benchmark: parse-only limit vs end-to-end rate, and api latency.

In one run, on this machine, against 127.0.0.1 only:
1. parse-only limit: PDFs/min that `parse_pdf` alone achieves with N processes on the same files;
2. end-to-end: jobs/min from upload to ``completed`` with a real api (`schedgen serve api`), Postgres,
   Redis (AOF on) and `schedgen serve worker --processes N`; reported as a ratio of (1);
3. latency: upload and status p50/p95 while sending status requests at a steady rate (default 100/s)
   and uploads at a steady rate (default 5/s) for a fixed time.

    python benchmarks/pipeline_bench.py                 # real PDFs from ../shared if present
    python benchmarks/pipeline_bench.py --json          # machine-readable
    python benchmarks/pipeline_bench.py --compare /tmp/before   # + a second stack from another tree

``--compare DIR`` starts a second, identical stack whose processes import ``schedgen_ops`` from DIR (e.g.
``git archive HEAD schedgen_ops | tar -x -C DIR``) and measures its end-to-end rate in the same rounds,
the order of the two stacks alternating from round to round, so before and after see the same machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port, service_tempdir

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SCHEDGEN_SHARED_DIR", REPO.parent / "shared")) / "fixtures" / "up-pdfs"
REAL = ["UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf"]


def load_files() -> tuple[list[bytes], str]:
    if all((SHARED / name).exists() for name in REAL):
        return [(SHARED / name).read_bytes() for name in REAL], "real UP PDFs (" + ", ".join(REAL) + ")"
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    files = [render_pdf(generate_timetable(kind, seed=1, pages=1)) for kind in ("lectures", "tests", "exams")]
    return files, "synthetic 1-page PDFs (real PDFs absent)"


def _parse_many(args: tuple[list[bytes], int]) -> int:
    from schedgen_ops.parsing import parse_pdf

    files, count = args
    for i in range(count):
        parse_pdf(files[i % len(files)])
    return count


class ParseOnly:
    """A warm pool of parser processes (imports done before timing)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self.pool = multiprocessing.get_context("spawn").Pool(processes)
        self.pool.map(_parse_many, [([load_files()[0][0]], 1)] * processes)

    def rate(self, files: list[bytes], jobs: int) -> float:
        """PDFs per minute parsing ``jobs`` files split over the processes."""
        per = jobs // self.processes
        started = time.perf_counter()
        done = sum(self.pool.map(_parse_many, [(files, per)] * self.processes))
        return done / (time.perf_counter() - started) * 60

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


class Service:
    """Postgres, Redis, api and workers for the run; everything on 127.0.0.1."""

    def __init__(self, workers: int, api_workers: int, pythonpath: str | None = None) -> None:
        self.base = service_tempdir("schedgen-bench-")
        self.pg = PostgresServer.start(self.base / "pg")
        self.redis = RedisServer.start(self.base / "redis", appendonly="yes")
        uploads = self.base / "uploads"
        uploads.mkdir()
        self.port = free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SCHEDGEN_", "PROMETHEUS_"))}
        self.env.update(
            {
                "SCHEDGEN_DATABASE_URL": self.pg.url,
                "SCHEDGEN_REDIS_URL": self.redis.url,
                "SCHEDGEN_STORAGE_URL": f"file://{uploads}",
                "SCHEDGEN_OPS_TOKEN": "bench",
                "SCHEDGEN_METRICS_DIR": str(self.base / "metrics"),
                "SCHEDGEN_WORKER_METRICS_PORT": "0",
                "SCHEDGEN_RATE_UPLOADS": "1000000/hour",
                "SCHEDGEN_RATE_STATUS": "1000000/minute",
                "SCHEDGEN_RATE_REQUESTS": "1000000/minute",
                "SCHEDGEN_LOG_LEVEL": "WARNING",
            }
        )
        # `python -m` puts the working directory first on sys.path, ahead of PYTHONPATH: run there too.
        self.cwd = pythonpath
        if pythonpath is not None:
            self.env["PYTHONPATH"] = pythonpath
        self.procs: list[subprocess.Popen[bytes]] = []
        self._poll: psycopg.Connection[Any] | None = None
        self._spawn("serve", "api", "--port", str(self.port), "--workers", str(api_workers))
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.client.get("/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise SystemExit("api did not become ready")
        self.workers = workers

    def _spawn(self, *args: str) -> None:
        argv = [sys.executable, "-m", "schedgen_ops.cli.main", *args]
        log = open(self.base / f"{args[1]}.log", "ab")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(argv, env=self.env, cwd=self.cwd, stdout=log, stderr=log, start_new_session=True)
        )

    def start_workers(self) -> None:
        self._spawn("serve", "worker", "--processes", str(self.workers))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stats = self.client.get("/api/queue", headers={"Authorization": "Bearer bench"}).json()
            if len(stats["workers"]) >= self.workers:
                return
            time.sleep(0.2)
        raise SystemExit("workers did not start")

    def counters(self) -> tuple[int, int]:
        """(Redis commands processed, Postgres transactions committed) so far: per-job round trips, which
        a busy machine does not blur the way it blurs rates (an autocommit statement is one transaction)."""
        import redis

        client = redis.Redis.from_url(self.redis.url)
        try:
            commands = int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()
        with psycopg.connect(self.pg.url) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        return commands, int(row[0]) if row else 0

    def completed(self) -> int:
        """Completed jobs so far, over one long-lived connection: a new connection per 50 ms poll forked a
        Postgres backend each time, ~2.5 ms of CPU per job that the parse-only phase never paid."""
        if self._poll is None:
            self._poll = psycopg.connect(self.pg.url, autocommit=True)
        row = self._poll.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self._poll is not None:
            self._poll.close()
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.redis.stop()
        self.pg.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def upload(client: httpx.Client, data: bytes) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post("/api/uploads", files={"file": ("t.pdf", data, "application/pdf")})
    elapsed = time.perf_counter() - started
    if response.status_code != 202:
        raise SystemExit(f"upload failed: {response.status_code} {response.text}")
    return elapsed, response.json()["job_id"]


def end_to_end(service: Service, files: list[bytes], jobs: int) -> dict[str, float]:
    """Upload ``jobs`` PDFs with 8 concurrent clients while workers run; time until all are completed."""
    base = service.completed()
    redis_before, pg_before = service.counters()
    local = threading.local()

    def one(i: int) -> float:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=str(service.client.base_url), timeout=30)
        return upload(local.client, files[i % len(files)])[0]

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(jobs)))
    uploaded = time.perf_counter() - started
    while service.completed() - base < jobs:
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    redis_after, pg_after = service.counters()
    return {
        "jobs": jobs,
        "seconds": elapsed,
        "upload_seconds": uploaded,
        "per_min": jobs / elapsed * 60,
        "redis_commands_per_job": (redis_after - redis_before) / jobs,
        "pg_transactions_per_job": (pg_after - pg_before) / jobs,
    }


def steady_latency(
    service: Service, files: list[bytes], seconds: float, status_rate: float, upload_rate: float
) -> dict[str, Any]:
    """Open-loop load: status GETs at ``status_rate``/s and uploads at ``upload_rate``/s."""
    _, job_id = upload(service.client, files[0])
    status_lat: list[float] = []
    upload_lat: list[float] = []
    late: list[float] = []
    lock = threading.Lock()
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=str(service.client.base_url), timeout=30)
        return local.client  # type: ignore[no-any-return]

    def status_once(due: float) -> None:
        lag = time.perf_counter() - due
        started = time.perf_counter()
        response = client().get(f"/api/jobs/{job_id}")
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.text
        with lock:
            status_lat.append(elapsed)
            late.append(lag)

    def upload_once(due: float) -> None:
        elapsed, _ = upload(client(), files[int(due * 1000) % len(files)])
        with lock:
            upload_lat.append(elapsed)

    schedule: list[tuple[float, Any]] = []
    t0 = time.perf_counter() + 0.5
    schedule += [(t0 + i / status_rate, status_once) for i in range(int(seconds * status_rate))]
    schedule += [(t0 + i / upload_rate, upload_once) for i in range(int(seconds * upload_rate))]
    schedule.sort(key=lambda item: item[0])
    with ThreadPoolExecutor(32) as pool:
        for due, fn in schedule:
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(fn, due)

    def pct(values: list[float], q: float) -> float:
        return (
            round(statistics.quantiles(values, n=100)[q - 1] * 1000, 1) if len(values) > 2 else float("nan")
        )

    server = _server_side_p95(service.client.get("/metrics").text)
    return {
        "server_side_p95_le_ms": server,
        "seconds": seconds,
        "status_rate": status_rate,
        "upload_rate": upload_rate,
        "status_count": len(status_lat),
        "status_p50_ms": pct(status_lat, 50),
        "status_p95_ms": pct(status_lat, 95),
        "upload_count": len(upload_lat),
        "upload_p50_ms": pct(upload_lat, 50),
        "upload_p95_ms": pct(upload_lat, 95),
        "status_send_lag_p95_ms": pct(late, 95),
    }


def _server_side_p95(text: str) -> dict[str, float]:
    """Upper bound (histogram bucket) of the api's own p95 per route, from its Prometheus histogram."""
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if not line.startswith("schedgen_http_request_duration_seconds_bucket{"):
            continue
        labels, value = line.rsplit(" ", 1)
        route = labels.split('route="', 1)[1].split('"', 1)[0]
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        buckets.setdefault(route, []).append((float("inf") if le == "+Inf" else float(le), float(value)))
    result: dict[str, float] = {}
    for route in ("/api/jobs/{job_id}", "/api/uploads"):
        points = sorted(buckets.get(route, []))
        total = points[-1][1] if points else 0
        for le, cumulative in points:
            if total and cumulative >= 0.95 * total:
                result[route] = le * 1000
                break
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=300, help="PDFs per throughput round (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of both phases (default 3)")
    parser.add_argument("--processes", type=int, default=2, help="parser / worker processes (default 2)")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn workers (default 2, as deployed)")
    parser.add_argument("--seconds", type=float, default=20, help="steady-load phase length (default 20)")
    parser.add_argument("--status-rate", type=float, default=100, help="status requests/s (default 100)")
    parser.add_argument(
        "--upload-rate", type=float, default=5, help="uploads/s in the steady phase (default 5)"
    )
    parser.add_argument(
        "--compare",
        metavar="DIR",
        help="also run a second stack importing schedgen_ops from DIR (e.g. a `git archive` of HEAD)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()

    files, source = load_files()
    results: dict[str, Any] = {"files": source, "processes": args.processes, "cpus": os.cpu_count()}
    results["load_avg_1m_start"] = round(os.getloadavg()[0], 2)  # the machine may be shared
    parse_pool = ParseOnly(args.processes)
    service = Service(args.processes, args.api_workers)
    other = Service(args.processes, args.api_workers, pythonpath=args.compare) if args.compare else None
    rounds: list[dict[str, float]] = []
    try:
        for stack in (service, other):
            if stack is not None:
                stack.start_workers()
                end_to_end(stack, files, 20)  # warm-up: connections, first parse in each worker
        # Alternate the phases (and with --compare the stacks' order) so all see the same busy machine.
        for index in range(args.rounds):
            parse_rate = parse_pool.rate(files, args.jobs)
            measured: dict[str, float] = {}
            order = [("end_to_end_per_min", service), ("compare_per_min", other)]
            for key, stack in order if index % 2 == 0 else order[::-1]:
                if stack is not None:
                    e2e = end_to_end(stack, files, args.jobs)
                    prefix = key.removesuffix("_per_min")
                    measured[key] = round(e2e["per_min"], 1)
                    measured[prefix + "_redis_commands_per_job"] = round(e2e["redis_commands_per_job"], 1)
                    measured[prefix + "_pg_transactions_per_job"] = round(e2e["pg_transactions_per_job"], 1)
            rounds.append({"parse_only_per_min": round(parse_rate, 1), **measured})
        results["rounds"] = rounds
        results["parse_only_per_min"] = statistics.median(r["parse_only_per_min"] for r in rounds)
        results["end_to_end"] = {
            "jobs_per_round": args.jobs,
            "per_min": statistics.median(r["end_to_end_per_min"] for r in rounds),
        }
        results["end_to_end_vs_parse_only"] = round(
            statistics.median(r["end_to_end_per_min"] / r["parse_only_per_min"] for r in rounds), 3
        )
        if other is not None:
            results["compare"] = {
                "pythonpath": args.compare,
                "per_min": statistics.median(r["compare_per_min"] for r in rounds),
                "vs_parse_only": round(
                    statistics.median(r["compare_per_min"] / r["parse_only_per_min"] for r in rounds), 3
                ),
            }
        results["latency"] = steady_latency(service, files, args.seconds, args.status_rate, args.upload_rate)
    finally:
        parse_pool.close()
        service.stop()
        if other is not None:
            other.stop()
    results["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    results["targets"] = {
        "end_to_end_per_min>=600": results["end_to_end"]["per_min"] >= 600,
        "end_to_end_vs_parse_only>=0.75": results["end_to_end_vs_parse_only"] >= 0.75,
        "status_p95_ms<50": results["latency"]["status_p95_ms"] < 50,
    }
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    lat = results["latency"]
    print(
        f"files: {source}; {args.processes} processes; {os.cpu_count()} CPUs; load average "
        f"{results['load_avg_1m_start']} -> {results['load_avg_1m_end']}"
    )
    for i, r in enumerate(rounds, 1):
        compare = ""
        if "compare_per_min" in r:
            compare = (
                f", --compare stack {r['compare_per_min']:.1f}/min "
                f"({r['compare_per_min'] / r['parse_only_per_min']:.0%})"
            )
        if "compare_per_min" in r:
            compare += (
                f" [{r['compare_redis_commands_per_job']:g} Redis commands, "
                f"{r['compare_pg_transactions_per_job']:g} Postgres transactions per job]"
            )
        print(
            f"round {i}: parse-only {r['parse_only_per_min']:.1f}/min, "
            f"end to end {r['end_to_end_per_min']:.1f}/min "
            f"({r['end_to_end_per_min'] / r['parse_only_per_min']:.0%}) "
            f"[{r['end_to_end_redis_commands_per_job']:g} Redis commands, "
            f"{r['end_to_end_pg_transactions_per_job']:g} Postgres transactions per job]{compare}"
        )
    print(f"parse-only limit:      {results['parse_only_per_min']:8.1f} PDFs/min (median)")
    if "compare" in results:
        print(
            f"--compare {args.compare}: {results['compare']['per_min']:8.1f} jobs/min (median; "
            f"median ratio {results['compare']['vs_parse_only']:.0%} of parse-only)"
        )
    print(
        f"end to end:            {results['end_to_end']['per_min']:8.1f} jobs/min (median; "
        f"median ratio {results['end_to_end_vs_parse_only']:.0%} of parse-only)"
    )
    print(
        f"status at {args.status_rate:g}/s:     p50 {lat['status_p50_ms']} ms, "
        f"p95 {lat['status_p95_ms']} ms "
        f"({lat['status_count']} requests)"
    )
    print(
        f"upload at {args.upload_rate:g}/s:        p50 {lat['upload_p50_ms']} ms, "
        f"p95 {lat['upload_p95_ms']} ms "
        f"({lat['upload_count']} requests)"
    )
    print(f"api-side p95 (histogram bucket upper bound, ms): {lat['server_side_p95_le_ms']}")
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in results["targets"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
