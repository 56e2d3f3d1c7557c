"""`schedgen status` for the local runtime: each service's processes, their health and resource use.

Read from supervisord's process table, its log (restarts), the api slots' /readyz, the front door and
the api's view of the RQ workers' heartbeats.
"""

from __future__ import annotations

import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from schedgen_ops.runtime.base import SCALABLE_SERVICES, ProcessStatus, ServiceStatus
from schedgen_ops.runtime.local_tree import LocalTree
from schedgen_ops.runtime.supervisor import RUNNING_STATES, colourless

if TYPE_CHECKING:
    from schedgen_ops.runtime.local import LocalRuntime

SERVICES = SCALABLE_SERVICES
GROUPS = ("frontdoor", "api", "pdf-worker", "postgres", "redis", "prometheus")


def stack_status(runtime: LocalRuntime, tree: Path) -> list[ServiceStatus]:
    """One row per service of the running stack (``tree`` is the active one)."""
    infos = runtime.supervisor.infos()
    restarts = unexpected_exits(runtime.logs_dir / "supervisord.log")
    desired = runtime.desired(tree)
    external = runtime.external_programs()
    rendered = LocalTree(tree)
    by_group: dict[str, list[dict[str, Any]]] = {}
    for info in infos:
        by_group.setdefault(colourless(info["group"]), []).append(info)
    result = []
    now = time.time()
    usage = _usage_all([i["pid"] for i in infos if i["statename"] in RUNNING_STATES and i["pid"]])
    in_rotation = set(runtime.frontdoor.ports())
    for group in GROUPS:
        members = by_group.get(group, [])
        if group == "prometheus" and all(m["statename"] == "STOPPED" for m in members):
            continue
        processes = []
        for info in sorted(members, key=lambda i: i["name"]):
            running = info["statename"] in RUNNING_STATES
            if group in SERVICES and not running:
                continue
            cpu, mem = usage.get(info["pid"], (None, None))
            processes.append(
                ProcessStatus(
                    name=info["name"],
                    state=info["statename"].lower(),
                    pid=info["pid"] or None,
                    uptime_s=round(now - info["start"], 1) if running and info["start"] else None,
                    restarts=restarts.get(info["name"], 0),
                    cpu_percent=cpu,
                    memory_bytes=mem,
                )
            )
        running_count = sum(1 for p in processes if p.state == "running")
        want = desired.get(group, 0 if group in external else 1)
        health = "ok" if running_count >= want else "degraded"
        if group == "api":
            for process in processes:
                port = rendered.port(process.name)
                rotation = "in rotation" if port in in_rotation else "not in rotation"
                process.health = f"{_probe_ready(port)}, {rotation}, :{port}"
            if any(not (p.health or "").startswith("ready") for p in processes):
                health = "degraded"
            if not any(rendered.port(p.name) in in_rotation for p in processes):
                health = "degraded"
        if group == "frontdoor" and processes:
            url = rendered.public_url()
            processes[0].health = f"{_probe_url(url + '/healthz')}, {url}, {len(in_rotation)} upstream(s)"
            if not processes[0].health.startswith("ready"):
                health = "degraded"
        if group == "pdf-worker" and processes:
            alive = live_workers(runtime, tree)
            for process in processes:
                process.health = f"{alive} live" if alive is not None else "unknown"
            if alive == 0:
                health = "degraded"
        if group in external:
            health = "external"
        result.append(ServiceStatus(group, want, running_count, health, processes))
    return result


def live_workers(runtime: LocalRuntime, tree: Path) -> int | None:
    """RQ workers with a fresh heartbeat, from the api's /api/queue (None when it does not answer)."""
    urls = list(runtime.api_urls(tree).values())
    token = runtime.app_env(tree).get("SCHEDGEN_OPS_TOKEN", "")
    try:
        import httpx

        response = httpx.get(f"{urls[0]}/api/queue", headers={"Authorization": f"Bearer {token}"}, timeout=3)
        workers = response.json().get("workers", []) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, IndexError):
        return None
    if workers is None:
        return None
    return sum(1 for w in workers if w.get("heartbeat_age_s") is not None and w["heartbeat_age_s"] < 60)


def unexpected_exits(log: Path) -> dict[str, int]:
    """Restarts per program since supervisord started: its log's "not expected" exits."""
    counts: dict[str, int] = {}
    if not log.exists():
        return counts
    for line in log.read_text(errors="replace").splitlines():
        if "supervisord started with pid" in line:
            counts.clear()
        match = re.search(r"exited: (\S+) \(.*not expected\)", line)
        if match:
            counts[match.group(1)] = counts.get(match.group(1), 0) + 1
    return counts


def _probe_ready(port: int) -> str:
    """``ready`` when the api replica's /readyz answers 200, else what it said."""
    import httpx

    try:
        response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"not ready (HTTP {response.status_code})"


def _probe_url(url: str) -> str:
    """``ready`` when the front door answers 200 (its certificate is judged by `schedgen health`)."""
    import httpx

    try:
        response = httpx.get(url, timeout=3, verify=False)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ready" if response.status_code == 200 else f"HTTP {response.status_code}"


def _usage_all(pids: list[int]) -> dict[int, tuple[float | None, int | None]]:
    """CPU percent (one 0.3 s sample for all) and RSS of each process together with its children."""
    trees: dict[int, list[psutil.Process]] = {}
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            trees[pid] = [root, *root.children(recursive=True)]
    for procs in trees.values():
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.cpu_percent(None)
    time.sleep(0.3)
    result: dict[int, tuple[float | None, int | None]] = {}
    for pid, procs in trees.items():
        cpu, rss = 0.0, 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
        result[pid] = (round(cpu, 1), rss)
    return result
