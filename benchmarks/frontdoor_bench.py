"""What the local front door (Caddy) costs: job-status latency at a fixed rate through it vs. straight to one
api replica, measured in the same run (alternating blocks, so machine load hits both alike).

    PATH=$PWD/.venv/bin:$PATH .venv/bin/python benchmarks/frontdoor_bench.py   # starts its own stack
    .venv/bin/python benchmarks/frontdoor_bench.py --project DIR --keep   # reuse a running stack

The client is open-loop: a request is sent every 1/rate s whatever the previous answers did, so a slow
path shows as latency, not as a lower rate. Prints p50/p95/p99 per path and the front-door/direct ratio
(goal: p95 ratio <= 1.2). The stack runs with api=1 so both paths reach the same replica.
`--interleave` takes the two paths in turn within one series (half the rate each) instead of in blocks:
it isolates the hop's latency from the CPU the extra process takes from a small machine. `--control` adds
a second direct path: its ratio to the first is the run's noise floor (an A/A comparison).

One client and one keep-alive pool serve every path; per path it also prints the TCP connections opened
(keep-alive held on both) and the client's own lag behind its schedule, plus the load average and Caddy's
CPU per proxied request, so a figure taken on a shared machine carries what it was measured under.
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


class _Path:
    """One path's samples: latencies (ms) of its 200s, errors, new TCP connections and the client's lag."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.connects = 0
        self.lag: list[float] = []  # ms between a request's planned send time and when the client sent it


async def _paced(
    urls: dict[str, str], rate: float, seconds: float, client: httpx.AsyncClient, into: dict[str, _Path]
) -> dict[str, _Path]:
    """Open-loop: one GET every 1/rate s for ``seconds``, taking the paths in ``urls`` in turn. Adds to
    ``into`` and returns this series' own samples (per-block ratios come from those)."""
    block = {name: _Path() for name in urls}

    async def one(name: str, planned: float) -> None:
        counts = (block[name], into[name])

        async def trace(event: str, info: dict[str, object]) -> None:
            if event == "connection.connect_tcp.complete":  # keep-alive broke: a new TCP connection
                for p in counts:
                    p.connects += 1

        begin = time.perf_counter()
        for p in counts:
            p.lag.append((begin - planned) * 1000)
        try:
            response = await client.get(urls[name], timeout=10, extensions={"trace": trace})
        except httpx.HTTPError:
            for p in counts:
                p.errors += 1
            return
        took = (time.perf_counter() - begin) * 1000
        if response.status_code != 200:
            for p in counts:
                p.errors += 1
            if into[name].errors == 1:
                print(f"{urls[name]}: HTTP {response.status_code} {response.text[:200]}", file=sys.stderr)
            return
        for p in counts:
            p.latencies.append(took)

    names = list(urls)
    tasks = []
    start = time.perf_counter()
    for i in range(int(rate * seconds)):
        planned = start + i / rate
        delay = planned - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(names[i % len(names)], planned)))
    await asyncio.gather(*tasks)
    return block


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _summary(p: _Path) -> dict[str, float]:
    v = p.latencies
    return {
        "requests": len(v) + p.errors,
        "errors": p.errors,
        "p50_ms": round(statistics.median(v), 2),
        "p95_ms": round(_pct(v, 0.95), 2),
        "p99_ms": round(_pct(v, 0.99), 2),
        "new_connections": p.connects,
        "client_lag_p95_ms": round(_pct(p.lag, 0.95), 2),
    }


def _ratio(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {q: round(a[q] / b[q], 2) for q in ("p50_ms", "p95_ms", "p99_ms")}


async def _measure(
    paths: dict[str, str], rate: float, seconds: float, blocks: int, interleave: bool, caddy_pid: int
) -> tuple[dict[str, dict[str, float]], list[float], float]:
    """Blocks (the default): ``rate`` req/s on one path at a time, the paths alternating block by block, so
    each path carries the full rate and the front door's own CPU is charged to it. Interleaved: one series
    at ``rate`` req/s in all that takes the paths in turn, so a load spike hits both alike and the figure is
    the hop's own latency (each path gets rate/len(paths)). One client and one connection pool serve every
    path (HTTP/1.1 keep-alive on all; new connections are counted). Returns the per-path summaries, the
    front door/direct p95 ratio of each block and Caddy's CPU seconds over the measured blocks."""
    total = {name: _Path() for name in paths}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    series = [paths] if interleave else [{name: url} for name, url in paths.items()]
    per_block: list[float] = []
    async with httpx.AsyncClient(limits=limits) as client:
        warm = {name: _Path() for name in paths}
        for urls in series:  # warm-up: connections, caches (not counted)
            await _paced(urls, rate, 2, client, warm)
        cpu_before = _cpu_s(caddy_pid)
        for _ in range(blocks):
            got: dict[str, _Path] = {}
            for urls in series:
                got.update(await _paced(urls, rate, seconds / blocks, client, total))
            if got["frontdoor"].latencies and got["direct"].latencies:
                per_block.append(
                    round(_pct(got["frontdoor"].latencies, 0.95) / _pct(got["direct"].latencies, 0.95), 2)
                )
        cpu = _cpu_s(caddy_pid) - cpu_before
    return {name: _summary(p) for name, p in total.items()}, per_block, cpu


def _cpu_s(pid: int) -> float:
    """User+system CPU seconds of a process (0 when it cannot be read)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load() -> str:
    """The 1/5/15-minute load averages: every figure of this benchmark is read next to them."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _table(results: dict[str, dict[str, float]], rate: float, interleave: bool) -> list[str]:
    each = rate / len(results) if interleave else rate
    lines = [
        f"{'path':<13} {'req/s':>6} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} "
        f"{'new conns':>9} {'client lag p95 ms':>17}"
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<13} {each:>6.1f} {r['requests']:>8g} {r['errors']:>6g} {r['p50_ms']:>7.2f} "
            f"{r['p95_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['new_connections']:>9g} "
            f"{r['client_lag_p95_ms']:>17.2f}"
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rate",
        type=float,
        default=100.0,
        help="requests per second: on each path (blocks) or in all (--interleave)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per path")
    parser.add_argument("--blocks", type=int, default=6, help="alternating blocks per path")
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="one series taking the paths in turn (the hop's own latency)",
    )
    parser.add_argument(
        "--control",
        action="store_true",
        help="add a second direct path (direct_again): its ratio to direct is this run's noise floor",
    )
    parser.add_argument("--project", type=Path, help="a project whose local stack already runs")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    args = parser.parse_args()

    made = args.project is None
    project = args.project or Path(tempfile.mkdtemp(prefix="schedgen-fdbench-", dir="/tmp")) / "p"
    project.mkdir(parents=True, exist_ok=True)
    os.chmod(project.parent, 0o755)
    env = _env() if made else {**os.environ}
    load_before = load_after = ""
    try:
        if made:
            _cli(project, env, "up", "--json")
        status = json.loads(_cli(project, env, "status", "--json"))
        door = status["urls"]["api"]
        api = next(s for s in status["services"] if s["name"] == "api")
        caddy_pid = next(s for s in status["services"] if s["name"] == "frontdoor")["processes"][0]["pid"]
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
        paths = {"frontdoor": door + path, "direct": direct + path}
        if args.control:
            paths["direct_again"] = direct + path
        load_before = _load()
        results, per_block, caddy_cpu_s = asyncio.run(
            _measure(paths, args.rate, args.seconds, args.blocks, args.interleave, int(caddy_pid))
        )
        load_after = _load()
    finally:
        if made and not args.keep:
            _cli(project, env, "down")
            shutil.rmtree(project.parent, ignore_errors=True)
    ratio = _ratio(results["frontdoor"], results["direct"])
    control = _ratio(results["direct_again"], results["direct"]) if args.control else None
    # Caddy's CPU over the measured blocks per proxied request (its health checks included): the hop's cost.
    caddy_ms = round(caddy_cpu_s * 1000 / max(1, results["frontdoor"]["requests"]), 3)
    report = {
        "rate_per_s": args.rate,
        "seconds_per_path": args.seconds,
        "interleaved": args.interleave,
        "load_average_before": load_before,
        "load_average_after": load_after,
        **results,
        "ratio": ratio,
        "ratio_p95_per_block": per_block,
        "control_ratio": control,
        "caddy_cpu_ms_per_request": caddy_ms,
    }
    print(json.dumps(report, indent=2))
    print(f"load average before {load_before}, after {load_after}")
    print("\n".join(_table(results, args.rate, args.interleave)))
    print(
        f"front door / direct at {args.rate:g} req/s: p50 x{ratio['p50_ms']}, p95 x{ratio['p95_ms']} "
        f"(goal p95 <= 1.2: {'met' if ratio['p95_ms'] <= 1.2 else 'MISSED'}); p95 ratio per block "
        f"{' '.join(map(str, per_block))}"
    )
    if control:
        print(
            f"control direct_again / direct (same replica, the run's noise floor): p50 x{control['p50_ms']}, "
            f"p95 x{control['p95_ms']}"
        )
    print(f"Caddy CPU: {caddy_ms} ms per proxied request")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
