"""Rolling compose deploys on the real engine: a deploy and a rollback under load lose no request and no job.

While `schedgen deploy` and `schedgen rollback` replace every api and worker container, a poller calls
/healthz through the published 127.0.0.1 ports every 0.1 s (trying the ports of the range in order, as the
health-checking proxy in front of an edge-less stack does), an uploader submits a timetable every 0.5 s,
and a sampler records the Docker health of every api container. At no sample may the stack be without a
running, healthy api container, no poll may go unanswered, every upload must be accepted and parsed once,
and the engine's DNS name `api` on the edge network (what Traefik's file provider routes to) must resolve
to exactly the new containers afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf
from schedgen_ops.runtime.engine import DockerEngine
from tests.dockerkit import base_image
from tests.e2e.composekit import ComposeStack

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(900)]


@dataclass
class Traffic:
    """What the background clients saw, with monotonic timestamps."""

    polls: list[tuple[float, int | None, str]] = field(default_factory=list)  # (t, port answering, error)
    health: list[tuple[float, dict[str, tuple[str, str | None]]]] = field(default_factory=list)
    uploads: list[dict[str, str]] = field(default_factory=list)
    upload_errors: list[str] = field(default_factory=list)
    sampler_errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def _first_answer(client: httpx.Client, ports: list[int], method: str, path: str, **kw: object) -> tuple:
    """Try the range's ports in order until one answers (what the proxy in front does); last error."""
    error = "no port"
    for port in ports:
        try:
            response = client.request(method, f"http://127.0.0.1:{port}{path}", **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            error = f"{port}: {type(exc).__name__}"
            continue
        if response.status_code < 500:
            return port, response, ""
        error = f"{port}: HTTP {response.status_code}"
    return None, None, error


def _poll(stack: ComposeStack, traffic: Traffic) -> None:
    with httpx.Client(timeout=2) as client:
        while not traffic.stop.is_set():
            port, response, error = _first_answer(client, stack.ports, "GET", "/healthz")
            ok = response is not None and response.status_code == 200
            traffic.polls.append((time.monotonic(), port if ok else None, error))
            time.sleep(0.1)


def _upload(stack: ComposeStack, traffic: Traffic) -> None:
    pdf = render_pdf(generate_timetable("lectures", seed=11, n_rows=4))
    with httpx.Client(timeout=30) as client:
        while not traffic.stop.is_set():
            files = {"file": ("t.pdf", pdf, "application/pdf")}
            _, response, error = _first_answer(client, stack.ports, "POST", "/api/uploads", files=files)
            if response is not None and response.status_code == 202:
                traffic.uploads.append(response.json())
            else:
                traffic.upload_errors.append(error or f"HTTP {response.status_code if response else '?'}")
            time.sleep(0.5)


def _sample_health(stack: ComposeStack, traffic: Traffic) -> None:
    engine = DockerEngine()
    while not traffic.stop.is_set():
        try:
            api = {c.id: (c.state, c.health) for c in engine.containers(stack.name) if c.service == "api"}
        except SchedgenError as exc:  # the engine did not answer: a failed sample, never a skipped one
            traffic.sampler_errors.append(str(exc))
        else:
            traffic.health.append((time.monotonic(), api))
        time.sleep(0.25)


def _healthy(sample: dict[str, tuple[str, str | None]]) -> set[str]:
    return {cid for cid, (state, health) in sample.items() if state == "running" and health == "healthy"}


def _edge_dns(stack: ComposeStack) -> set[str]:
    """Addresses of `api` as a container on the edge network (Traefik's seat) resolves it."""
    out = stack.docker(
        "run", "--rm", "--network", f"{stack.name}_edge", base_image(), "getent", "ahostsv4", "api"
    )
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def _edge_ips(stack: ComposeStack, ids: set[str]) -> set[str]:
    found = set()
    for cid in ids:
        networks = json.loads(stack.docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", cid))
        found.add(networks[f"{stack.name}_edge"]["IPAddress"])
    return found


def _wait_terminal(stack: ComposeStack, uploads: list[dict[str, str]], timeout_s: float = 180) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    final: dict[str, dict] = {}
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline and len(final) < len(uploads):
            for body in uploads:
                if body["job_id"] in final:
                    continue
                _, response, _ = _first_answer(client, stack.ports, "GET", body["status_url"])
                status = response.json() if response is not None and response.status_code == 200 else {}
                if status.get("status") in ("completed", "failed"):
                    final[body["job_id"]] = status
            time.sleep(0.5)
    return [final.get(body["job_id"], {"job_id": body["job_id"], "status": "?"}) for body in uploads]


def test_rolling_deploy_and_rollback_keep_a_healthy_api_serving_and_lose_no_job(
    shared_compose_stack: ComposeStack,
) -> None:
    stack = shared_compose_stack
    if not stack.container_ids("api"):
        stack.ok("deploy", "--target", "compose", "--no-canary", timeout=900)
    live = json.loads(stack.ok("releases", "--json"))["current"]
    generations = [stack.container_ids("api") | stack.container_ids("pdf-worker")]
    traffic = Traffic()
    threads = [
        threading.Thread(target=fn, args=(stack, traffic), daemon=True)
        for fn in (_poll, _upload, _sample_health)
    ]
    for thread in threads:
        thread.start()
    marks = {"start": time.monotonic()}
    try:
        time.sleep(1.0)
        deployed = json.loads(
            stack.ok("deploy", "--target", "compose", "--set", "service.log_level=DEBUG", "--json")
        )
        marks["deployed"] = time.monotonic()
        generations.append(stack.container_ids("api") | stack.container_ids("pdf-worker"))
        stack.ok("rollback", "--no-canary")
        marks["rolled_back"] = time.monotonic()
        generations.append(stack.container_ids("api") | stack.container_ids("pdf-worker"))
        time.sleep(1.0)
    finally:
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=30)
    final = _wait_terminal(stack, traffic.uploads)

    # Every container was replaced twice: three disjoint generations of the same size.
    assert len({len(g) for g in generations}) == 1 and len(generations[0]) >= 2, generations
    assert not (generations[0] & generations[1] or generations[1] & generations[2]), generations
    assert not generations[0] & generations[2], generations
    assert deployed["canary_job"], deployed
    assert json.loads(stack.ok("releases", "--json"))["current"] == live
    # At every health sample at least one api container ran healthy; the old and the new one overlapped.
    assert len(traffic.health) > 40 and traffic.sampler_errors == [], (
        len(traffic.health),
        traffic.sampler_errors,
    )
    assert traffic.health[-1][0] > marks["rolled_back"], "the health sampler stopped before the end"
    gaps = [(round(t - marks["start"], 2), s) for t, s in traffic.health if not _healthy(s)]
    assert gaps == [], f"moments without a healthy api container: {gaps[:5]}"
    assert max(len(_healthy(s)) for _, s in traffic.health) >= 2, "old and new api never overlapped"
    # Every poll was answered through one of the published ports; both roll phases moved the port.
    failed = [(round(t - marks["start"], 2), e) for t, port, e in traffic.polls if port is None]
    assert len(traffic.polls) > 100 and failed == [], (
        f"{len(failed)}/{len(traffic.polls)} polls failed: {failed[:5]}"
    )
    assert len({port for _, port, _ in traffic.polls}) >= 2, "the serving port never moved: no roll happened"
    # Every upload was accepted and parsed exactly once (workers finished their jobs before stopping).
    assert traffic.upload_errors == [] and len(traffic.uploads) > 20, (
        traffic.upload_errors,
        len(traffic.uploads),
    )
    assert [f for f in final if f.get("status") != "completed" or f.get("attempts") != 1] == []
    # Traefik's upstream `api` (file provider, edge network) resolves to the new containers only.
    assert _edge_dns(stack) == _edge_ips(stack, stack.container_ids("api"))
    print(
        f"\nrolling: deploy {marks['deployed'] - marks['start']:.1f}s, rollback "
        f"{marks['rolled_back'] - marks['deployed']:.1f}s, {len(traffic.polls)} polls, "
        f"{len(traffic.health)} health samples, {len(traffic.uploads)} uploads, 0 failed"
    )
