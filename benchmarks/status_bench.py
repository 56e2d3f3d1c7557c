"""Job status cost: `GET /api/jobs/{id}` of the real api against a bare FastAPI endpoint, with wrk.

In one run, on this machine, against 127.0.0.1 only: a real api (`schedgen serve api`, real Postgres and
Redis, rate limits on) and a bare FastAPI app that returns constant JSON, both under the same uvicorn
settings (workers, keep-alive, no access log). wrk rounds alternate bare / real so that a change in the
machine's load hits both; the figure is the median real rate over the median bare rate (goal >= 40%).
The real api is measured on a queued job (queue position looked up in Redis) and a completed one.

    python benchmarks/status_bench.py                     # 5 alternated rounds of 5 s each, 16 connections
    python benchmarks/status_bench.py --json
    python benchmarks/status_bench.py --pythonpath /tmp/before   # the api of `git archive REV schedgen_ops`
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pipeline_bench import Service, load_files

from schedgen_ops.runtime.dataservices import free_port

CONSTANT = {
    "job_id": "0" * 32,
    "status": "completed",
    "kind": "lectures",
    "attempts": 1,
    "created_at": "2026-01-01T00:00:00Z",
    "started_at": "2026-01-01T00:00:01Z",
    "finished_at": "2026-01-01T00:00:02Z",
    "error": None,
    "queue_position": None,
}


def bare_app() -> Any:
    """The baseline: FastAPI, one route of the same shape, constant JSON, no dependencies."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/api/jobs/{job_id}")
    async def status(job_id: str) -> dict[str, Any]:
        return CONSTANT

    return app


def uvicorn_kwargs(workers: int, keep_alive_s: float) -> dict[str, Any]:
    """The uvicorn settings of `schedgen serve api` (schedgen_ops/cli/serve.py), for the bare app too."""
    return {
        "factory": True,
        "host": "127.0.0.1",
        "workers": workers,
        "proxy_headers": False,
        "server_header": False,
        "access_log": False,
        "log_config": None,
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": max(1, round(keep_alive_s)),
    }


def start_bare(workers: int, base: Path) -> tuple[subprocess.Popen[bytes], int]:
    from schedgen_ops.service.settings import ServiceSettings

    keep_alive = ServiceSettings.model_fields["http_keep_alive_s"].default
    port = free_port()
    kwargs = {**uvicorn_kwargs(workers, keep_alive), "port": port, "app_dir": str(Path(__file__).parent)}
    code = f"import uvicorn; uvicorn.run('status_bench:bare_app', **{kwargs!r})"
    log = open(base / "bare.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/jobs/x", timeout=2).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit("bare app did not start")


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_P99 = re.compile(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")


def wrk(url: str, seconds: float, connections: int, threads: int) -> dict[str, float]:
    """One wrk round: requests/s, p99 ms and the count of non-2xx answers (must be 0)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--latency", url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    rps = _RPS.search(out)
    if rps is None:
        raise SystemExit("unexpected wrk output:\n" + out)
    p99 = _P99.search(out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    bad = _NON2XX.search(out)
    return {
        "rps": float(rps.group(1)),
        "p99_ms": float(p99.group(1)) * scale[p99.group(2)] if p99 else float("nan"),
        "non_2xx": int(bad.group(1)) if bad else 0,
    }


def completed_job(service: Service, data: bytes) -> str:
    """Upload one PDF and run the workers until it completes (then stop them: the queue stays still)."""
    job_id = service.client.post("/api/uploads", files={"file": ("t.pdf", data, "application/pdf")}).json()[
        "job_id"
    ]
    service.start_workers()
    deadline = time.monotonic() + 120
    while service.client.get(f"/api/jobs/{job_id}").json()["status"] != "completed":
        if time.monotonic() > deadline:
            raise SystemExit("the job did not complete")
        time.sleep(0.2)
    worker = service.procs.pop()
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)
    return job_id


def queued_job(service: Service, data: bytes, ahead: int) -> str:
    """A job waiting behind ``ahead`` others (no workers run), so its status looks up its position."""
    ids = [
        service.client.post("/api/uploads", files={"file": ("t.pdf", data, "application/pdf")}).json()[
            "job_id"
        ]
        for _ in range(ahead + 1)
    ]
    return ids[-1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="alternated rounds per target (default 5)")
    parser.add_argument("--seconds", type=float, default=5, help="wrk duration per round (default 5)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--api-workers", type=int, default=2, help="uvicorn workers (default 2, as deployed)")
    parser.add_argument("--queued-ahead", type=int, default=50, help="jobs ahead of the queued one")
    parser.add_argument(
        "--pythonpath",
        help="run the api from this copy of the package (a `git archive` of an older commit): a before",
    )
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("error: wrk is not installed (apt-get install -y wrk, or scripts/bootstrap.sh)")
    files, source = load_files()
    load_before = os.getloadavg()
    service = Service(workers=1, api_workers=args.api_workers, pythonpath=args.pythonpath)
    bare, bare_port = start_bare(args.api_workers, service.base)
    try:
        done = completed_job(service, files[-1])
        waiting = queued_job(service, files[-1], args.queued_ahead)
        real = f"http://127.0.0.1:{service.port}/api/jobs/"
        targets = {
            "bare": f"http://127.0.0.1:{bare_port}/api/jobs/{'0' * 32}",
            "completed": real + done,
            "queued": real + waiting,
        }
        for url in targets.values():  # warm-up (imports, pools, caches)
            wrk(url, 1, args.connections, args.threads)
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for _ in range(args.rounds):
            for name, url in targets.items():
                rounds[name].append(wrk(url, args.seconds, args.connections, args.threads))
    finally:
        os.killpg(bare.pid, signal.SIGTERM)
        bare.wait(timeout=30)
        service.stop()
        shutil.rmtree(service.base, ignore_errors=True)
    median = {name: statistics.median(r["rps"] for r in runs) for name, runs in rounds.items()}
    load_after = os.getloadavg()
    # Each round's own ratio (bare, completed and queued ran back to back): the spread shows the noise.
    round_ratios = {
        name: [round(r["rps"] / b["rps"], 3) for r, b in zip(rounds[name], rounds["bare"], strict=True)]
        for name in ("completed", "queued")
    }
    report: dict[str, Any] = {
        "files": source,
        "api_from": args.pythonpath or "this checkout",
        "command": "wrk "
        + f"-t{args.threads} -c{args.connections} -d{args.seconds:g}s --latency URL, "
        + f"{args.rounds} alternated rounds, {args.api_workers} uvicorn workers",
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average": load_after,
        "rounds": rounds,
        "median_rps": median,
        "ratio_completed": round(median["completed"] / median["bare"], 3),
        "ratio_queued": round(median["queued"] / median["bare"], 3),
        "round_ratios": round_ratios,
        "non_2xx": sum(r["non_2xx"] for runs in rounds.values() for r in runs),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        loads = " -> ".join(" ".join(f"{x:.2f}" for x in load) for load in (load_before, load_after))
        print(f"status bench: {report['command']}; api from {report['api_from']}")
        print(f"  machine: {report['cpus']} cpus, load average (1/5/15 min) {loads}")
        for name, runs in rounds.items():
            rates = ", ".join(f"{r['rps']:.0f}" for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            print(f"  {name:9s} median {median[name]:7.0f} req/s (rounds {rates}), p99 {p99:.1f} ms")
        for name in ("completed", "queued"):
            per_round = ", ".join(f"{x:.0%}" for x in round_ratios[name])
            print(f"  {name:9s} / bare per round: {per_round}")
        print(
            f"  RESULT (median / median, goal >= 40%): completed {report['ratio_completed']:.0%},"
            f" queued {report['ratio_queued']:.0%}; non-2xx answers: {report['non_2xx']}"
        )
    return 0 if report["non_2xx"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
