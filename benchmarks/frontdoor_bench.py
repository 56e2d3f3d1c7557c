"""What the local front door (Caddy) costs: job-status latency at a fixed rate through it vs. straight to one
api replica, measured in the same run (alternating blocks, so machine load hits both alike).

    PATH=$PWD/.venv/bin:$PATH .venv/bin/python benchmarks/frontdoor_bench.py   # starts its own stack
    .venv/bin/python benchmarks/frontdoor_bench.py --project DIR --keep   # reuse a running stack

The client is open-loop: a request is sent every 1/rate s whatever the previous answers did, so a slow
path shows as latency, not as a lower rate. Prints p50/p95/p99 per path and the front-door/direct ratio
(goal: p95 ratio <= 1.2). The stack runs with api=1 so both paths reach the same replica.
`--interleave` takes the two paths in turn within one series (half the rate each) instead of in blocks:
it isolates the hop's latency from the CPU the extra process takes from a small machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _cli(project: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(project), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"schedgen {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def _env() -> dict[str, str]:
    from schedgen_ops.runtime.dataservices import free_port, free_port_block

    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env.update(
        {
            "SCHEDGEN_PORTS__API": str(free_port()),
            "SCHEDGEN_PORTS__POSTGRES": str(free_port()),
            "SCHEDGEN_PORTS__REDIS": str(free_port()),
            "SCHEDGEN_PORTS__PROMETHEUS": str(free_port()),
            "SCHEDGEN_WORKER__METRICS_PORT": str(free_port_block(6)),
            "SCHEDGEN_FRONTDOOR__UPSTREAM_PORT": str(free_port_block(4)),
            "SCHEDGEN_SERVICE__WORKER_PROCESSES": "1",
            "SCHEDGEN_SERVICE__RATE_STATUS": "1000000/minute",
            "SCHEDGEN_SERVICE__RATE_REQUESTS": "1000000/minute",
            "SCHEDGEN_SERVICE__RATE_UPLOADS": "1000/hour",  # a canary upload per run on a kept stack
        }
    )
    return env


async def _paced(
    urls: dict[str, str], rate: float, seconds: float, client: httpx.AsyncClient
) -> dict[str, tuple[list[float], int]]:
    """Open-loop: one GET every 1/rate s for ``seconds``, taking the paths in ``urls`` in turn; per path, the
    latencies (ms) of the 200s and the error count."""
    latencies: dict[str, list[float]] = {name: [] for name in urls}
    errors = dict.fromkeys(urls, 0)

    async def one(name: str) -> None:
        begin = time.perf_counter()
        try:
            response = await client.get(urls[name], timeout=10)
        except httpx.HTTPError:
            errors[name] += 1
            return
        if response.status_code != 200:
            errors[name] += 1
            if errors[name] == 1:
                print(f"{urls[name]}: HTTP {response.status_code} {response.text[:200]}", file=sys.stderr)
            return
        latencies[name].append((time.perf_counter() - begin) * 1000)

    names = list(urls)
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(names[i % len(names)])))
    await asyncio.gather(*tasks)
    return {name: (latencies[name], errors[name]) for name in urls}


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _measure(
    paths: dict[str, str], rate: float, seconds: float, blocks: int, interleave: bool
) -> dict[str, dict[str, float]]:
    """Blocks (the default): ``rate`` req/s on one path at a time, the paths alternating block by block, so
    each path carries the full rate and the front door's own CPU is charged to it. Interleaved: one series
    at ``rate`` req/s in all that takes the paths in turn, so a load spike hits both alike and the figure is
    the hop's own latency (each path gets half the rate)."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    errors = dict.fromkeys(paths, 0)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    series = [paths] if interleave else [{name: url} for name, url in paths.items()]
    async with httpx.AsyncClient(limits=limits) as client:
        for urls in series:  # warm-up: connections, caches
            await _paced(urls, rate, 2, client)
        for _ in range(blocks):
            for urls in series:
                for name, (got, bad) in (await _paced(urls, rate, seconds / blocks, client)).items():
                    samples[name] += got
                    errors[name] += bad
    return {
        name: {
            "requests": len(v) + errors[name],
            "errors": errors[name],
            "p50_ms": round(statistics.median(v), 2),
            "p95_ms": round(_pct(v, 0.95), 2),
            "p99_ms": round(_pct(v, 0.99), 2),
        }
        for name, v in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second on each path")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per path")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks per path")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="one series taking the paths in turn (the hop's own latency)",
    )
    parser.add_argument("--project", type=Path, help="a project whose local stack already runs")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()

    made = args.project is None
    project = args.project or Path(tempfile.mkdtemp(prefix="schedgen-fdbench-", dir="/tmp")) / "p"
    project.mkdir(parents=True, exist_ok=True)
    os.chmod(project.parent, 0o755)
    env = _env() if made else {**os.environ}
    try:
        if made:
            _cli(project, env, "up", "--json")
        status = json.loads(_cli(project, env, "status", "--json"))
        door = status["urls"]["api"]
        api = next(s for s in status["services"] if s["name"] == "api")
        direct_port = api["processes"][0]["health"].rsplit(":", 1)[1]
        direct = f"http://127.0.0.1:{direct_port}"
        token = next(
            line.split("=", 1)[1]
            for line in (project / ".schedgen" / "secrets.env").read_text().splitlines()
            if line.startswith("OPS_TOKEN=")
        )
        from schedgen_ops.runtime.gate import canary

        with httpx.Client() as client:
            job_id, _ = canary(client, direct, token, 120)
        path = f"/api/jobs/{job_id}"
        results = asyncio.run(
            _measure(
                {"frontdoor": door + path, "direct": direct + path},
                args.rate,
                args.seconds,
                args.blocks,
                args.interleave,
            )
        )
    finally:
        if made and not args.keep:
            _cli(project, env, "down")
            shutil.rmtree(project.parent, ignore_errors=True)
    ratio = {
        q: round(results["frontdoor"][q] / results["direct"][q], 2) for q in ("p50_ms", "p95_ms", "p99_ms")
    }
    print(
        json.dumps(
            {
                "rate_per_s": args.rate,
                "seconds_per_path": args.seconds,
                "interleaved": args.interleave,
                **results,
                "ratio": ratio,
            },
            indent=2,
        )
    )
    print(
        f"front door / direct at {args.rate:g} req/s: p50 x{ratio['p50_ms']}, p95 x{ratio['p95_ms']} "
        f"(goal p95 <= 1.2: {'met' if ratio['p95_ms'] <= 1.2 else 'MISSED'})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
