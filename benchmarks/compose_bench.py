"""Compose runtime benchmark: image build (cold and warm), deploy time, and jobs/min end to end through the
compose stack against the local runtime, measured in the same run on this machine (127.0.0.1 only).

1. build cold: `schedgen build --no-cache` with an empty wheel cache (XDG_CACHE_HOME in a temp dir);
   build warm: the same command again with both caches (the wheel cache and the image layers);
2. deploy: `schedgen deploy --target compose` from an empty project (fresh volumes, Postgres init), with
   the gate's canary;
3. throughput: N uploads of the three real PDFs (or generated ones) with 8 concurrent clients, timed until
   every job is `completed` (polled over HTTP), first on the local runtime (`schedgen up`), then on the
   compose stack, with the same profile and worker count; the ratio compose/local is printed.

Needs a Docker engine and the test images (built by tests/dockerkit on first use: about 3 minutes).

    python benchmarks/compose_bench.py --jobs 150
    python benchmarks/compose_bench.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from dockerkit import base_image, ensure_compose_plugin, require_docker, standin_image  # noqa: E402

from schedgen_ops.runtime.dataservices import free_port, free_port_block, service_tempdir  # noqa: E402

SHARED = Path(os.environ.get("SCHEDGEN_SHARED_DIR", REPO.parent / "shared")) / "fixtures" / "up-pdfs"
REAL = ["UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf"]
RATES = {
    "service.rate_uploads": "1000000/hour",
    "service.rate_status": "1000000/minute",
    "service.rate_requests": "1000000/minute",
}


def schedgen(project: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 900) -> float:
    """Run one CLI command; return its wall time (exit on failure with its output)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(project), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"schedgen {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started


def load_files() -> tuple[list[bytes], str]:
    if all((SHARED / name).is_file() for name in REAL):
        return [(SHARED / name).read_bytes() for name in REAL], "the three real UP PDFs"
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    kinds = ("lectures", "tests", "exams")
    return [render_pdf(generate_timetable(k, seed=i)) for i, k in enumerate(kinds)], "generated PDFs"


def throughput(api: str, files: list[bytes], jobs: int) -> dict[str, float]:
    """Upload ``jobs`` PDFs with 8 concurrent clients; time until each job answers `completed`."""
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=api, timeout=30)
        return local.client

    def one(i: int) -> str:
        response = client().post(
            "/api/uploads", files={"file": ("t.pdf", files[i % len(files)], "application/pdf")}
        )
        if response.status_code != 202:
            raise SystemExit(f"upload failed: {response.status_code} {response.text[:300]}")
        return str(response.json()["job_id"])

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(one, range(jobs)))
    pending = set(ids)

    def done(job_id: str) -> str | None:
        status = client().get(f"/api/jobs/{job_id}").json()["status"]
        if status == "failed":
            raise SystemExit(f"job {job_id} failed")
        return job_id if status == "completed" else None

    while pending:
        with ThreadPoolExecutor(8) as pool:
            pending -= {j for j in pool.map(done, sorted(pending)) if j}
        if pending:
            time.sleep(0.2)
    elapsed = time.perf_counter() - started
    return {"jobs": jobs, "seconds": round(elapsed, 2), "per_min": round(jobs / elapsed * 60, 1)}


def _build_lines(results: dict[str, Any]) -> str:
    return (
        f"schedgen build: cold {results['build_cold_s']} s (no wheel cache, --no-cache), "
        f"first cached {results['build_first_cached_s']} s, warm {results['build_warm_s']} s"
    )


def configure(project: Path, settings: dict[str, str]) -> None:
    schedgen(project, "init", "--profile", "small")
    for key, value in settings.items():
        schedgen(project, "config", "set", key, value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--jobs", type=int, default=150, help="uploads per runtime (default 150)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--build-only", action="store_true", help="measure the image builds only")
    args = parser.parse_args()
    require_docker()
    ensure_compose_plugin()
    base, postgres, redis = base_image(), standin_image("postgres"), standin_image("redis")
    files, source = load_files()
    root = service_tempdir("schedgen-bench-compose-")
    name = f"bench{os.getpid()}"
    tag = f"schedgen-bench/service-{name}"
    results: dict[str, Any] = {"jobs": args.jobs, "files": source, "cpus": os.cpu_count()}
    local_project, compose_project = root / "local", root / "compose"
    local_project.mkdir()
    compose_project.mkdir()
    try:
        # -- the same profile and workers on both runtimes
        local_api = free_port_block(2)
        configure(
            local_project,
            {
                **RATES,
                "ports.api": str(local_api),
                "ports.postgres": str(free_port()),
                "ports.redis": str(free_port()),
                "ports.prometheus": str(free_port()),
                "worker.metrics_port": str(free_port_block(3)),
            },
        )
        compose_api = free_port_block(2)
        configure(
            compose_project,
            {
                **RATES,
                "name": name,
                "edge.enabled": "false",
                "edge.api_bind": f"127.0.0.1:{compose_api}",
                "monitoring.enabled": "false",
                "postgres.image": postgres,
                "redis.image": redis,
                "images.service": tag,
            },
        )
        # -- build cold, then warm
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "XDG_CACHE_HOME": cache}
            build = ["build", "--base-image", base]
            results["build_cold_s"] = round(schedgen(compose_project, *build, "--no-cache", env=env), 1)
            # The legacy builder does not reuse --no-cache layers: the first cached build lays them down.
            results["build_first_cached_s"] = round(schedgen(compose_project, *build, env=env), 1)
            results["build_warm_s"] = round(schedgen(compose_project, *build, env=env), 1)
        if args.build_only:
            print(json.dumps(results, indent=2) if args.json else _build_lines(results))
            return 0
        # -- local throughput (the baseline), then down
        schedgen(local_project, "up")
        results["local"] = throughput(f"http://127.0.0.1:{local_api}", files, args.jobs)
        schedgen(local_project, "down", "--volumes")
        # -- compose deploy and throughput
        results["deploy_s"] = round(schedgen(compose_project, "deploy", "--target", "compose"), 1)
        results["compose"] = throughput(f"http://127.0.0.1:{compose_api}", files, args.jobs)
        results["ratio_compose_to_local"] = round(
            results["compose"]["per_min"] / results["local"]["per_min"], 3
        )
    finally:
        for project in (local_project, compose_project):
            subprocess.run(
                [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(project), "down", "--volumes"],
                capture_output=True,
                timeout=600,
                check=False,
            )
        subprocess.run(["docker", "image", "rm", "-f", f"{tag}:0.1.0"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(f"files: {results['files']}, {results['jobs']} jobs per runtime, {results['cpus']} CPUs")
        print(_build_lines(results))
        print(f"deploy --target compose from an empty project: {results['deploy_s']} s")
        print(f"local runtime:   {results['local']['per_min']} jobs/min ({results['local']['seconds']} s)")
        print(
            f"compose runtime: {results['compose']['per_min']} jobs/min ({results['compose']['seconds']} s)"
        )
        print(f"ratio compose/local: {results['ratio_compose_to_local']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
