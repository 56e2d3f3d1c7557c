"""Where a job's CPU goes: ms of CPU per job by process over one end-to-end drain, and parse-only per PDF.

On 2 saturated cores the end-to-end rate is the parse's CPU over the whole stack's CPU per job, so this
table says which process to make cheaper (and what the benchmark harness itself costs). It starts the same
stack as `pipeline_bench.py` (real api, workers, Postgres, Redis on 127.0.0.1), warms it with 20 jobs,
then reads utime+stime of every process on the machine (and of the children each one reaped, which is
where short-lived Postgres backends show up) before and after a drain of ``--jobs`` uploads.

    python benchmarks/job_cpu_bench.py              # 500 jobs
    python benchmarks/job_cpu_bench.py --jobs 1000
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pipeline_bench as bench

Snapshot = dict[int, tuple[str, float, float]]


def snapshot() -> Snapshot:
    """pid -> (command line, own CPU s, reaped children's CPU s) for every process we may read."""
    out: Snapshot = {}
    for proc in psutil.process_iter(["cmdline", "name"]):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        cmd = " ".join(proc.info["cmdline"] or [proc.info["name"] or "?"])
        out[proc.pid] = (cmd, times.user + times.system, times.children_user + times.children_system)
    return out


def label(cmd: str) -> str:
    if "sandbox_child" in cmd:
        return "worker parse sandbox" if "--preload parse" in cmd else "api pre-accept sandbox"
    for key, name in (
        ("service.worker --scheduler", "rq scheduler"),
        ("service.worker", "rq worker parent"),
        ("spawn_main", "uvicorn api worker (or the parse-only pool, idle here)"),
        ("serve api", "uvicorn supervisor"),
        ("serve worker", "worker supervisor"),
        ("postgres", "postgres"),
        ("redis-server", "redis"),
        ("job_cpu_bench", "this benchmark (the upload client, completion polls)"),
    ):
        if key in cmd:
            return name
    return "other: " + cmd[:40]


def parse_only_cpu_ms(files: list[bytes], jobs: int) -> tuple[float, float]:
    """(PDFs/min, ms of CPU per PDF) of the parse-only pool on the same files."""
    pool = bench.ParseOnly(2)
    try:
        children = psutil.Process().children()
        before = sum(sum(child.cpu_times()[:2]) for child in children)
        rate = pool.rate(files, jobs)
        after = sum(sum(child.cpu_times()[:2]) for child in children)
    finally:
        pool.close()
    return rate, (after - before) / jobs * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=500, help="uploads in the measured drain (default 500)")
    args = parser.parse_args()
    files, source = bench.load_files()
    rate, parse_ms = parse_only_cpu_ms(files, args.jobs)
    service = bench.Service(2, 2)
    try:
        service.start_workers()
        bench.end_to_end(service, files, 20)
        time.sleep(1)
        before, machine_before = snapshot(), psutil.cpu_times()
        e2e = bench.end_to_end(service, files, args.jobs)
        after, machine_after = snapshot(), psutil.cpu_times()
    finally:
        service.stop()
    per_job: collections.Counter[str] = collections.Counter()
    for pid, (cmd, own, reaped) in after.items():
        own0, reaped0 = before[pid][1:] if pid in before else (0.0, 0.0)
        per_job[label(cmd)] += (own - own0) / args.jobs * 1000
        if reaped > reaped0:
            per_job[label(cmd) + ", reaped children"] += (reaped - reaped0) / args.jobs * 1000

    def busy(t: psutil._common.scputimes) -> float:  # type: ignore[name-defined]
        return float(t.user + t.nice + t.system)

    machine = (busy(machine_after) - busy(machine_before)) / args.jobs * 1000
    print(f"files: {source}; parse-only {rate:.0f} PDFs/min, {parse_ms:.1f} ms CPU per PDF")
    print(
        f"end to end: {args.jobs} jobs, {e2e['per_min']:.0f}/min "
        f"({e2e['per_min'] / rate:.0%} of parse-only); "
        f"{e2e['redis_commands_per_job']:.1f} Redis commands, {e2e['pg_transactions_per_job']:.1f} Postgres "
        "transactions per job"
    )
    print("ms of CPU per job, by process:")
    for name, ms in per_job.most_common():
        if ms >= 0.05:
            print(f"  {name:58s} {ms:6.2f}")
    print(f"  {'whole machine (user + nice + system)':58s} {machine:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
