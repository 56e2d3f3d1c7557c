"""Per-process memory on /metrics (api and worker) and the api's HTTP keep-alive timeout."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families
from stackkit import Stack

from schedgen_ops.runtime.dataservices import free_port

RSS = "schedgen_process_resident_memory_bytes"
MIN_RSS = 10 * 2**20  # a Python process with FastAPI or the parser imported is far above 10 MB


def rss_by_pid(text: str, role: str) -> dict[str, float]:
    """pid -> RSS of the ``role`` series on one /metrics page."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == RSS:
            for sample in family.samples:
                if sample.labels.get("role") == role:
                    out[sample.labels["pid"]] = sample.value
    return out


def test_api_and_worker_metrics_expose_rss_of_each_live_process(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes]
) -> None:
    stack = service_stack(api_workers=2, SCHEDGEN_WORKER_MAX_JOBS="1")
    port = free_port()
    worker_dir = stack.workdir / "worker-metrics"  # its own dir, as in a separate container
    worker = stack.start_worker(
        1, env={"SCHEDGEN_WORKER_METRICS_PORT": str(port), "SCHEDGEN_METRICS_DIR": str(worker_dir)}
    )

    # Both uvicorn processes publish on their own (a 5 s loop), whichever one answers the scrape.
    deadline = time.monotonic() + 15
    api: dict[str, float] = {}
    while time.monotonic() < deadline and len(api) < 2:
        api = rss_by_pid(stack.client.get("/metrics").text, "api")
        time.sleep(0.5)
    assert len(api) == 2 and all(value > MIN_RSS for value in api.values()), api

    def worker_rss() -> dict[str, float]:
        try:
            return rss_by_pid(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text, "worker")
        except httpx.HTTPError:
            return {}

    deadline = time.monotonic() + 30
    first: dict[str, float] = {}
    while time.monotonic() < deadline and not first:
        first = worker_rss()
        time.sleep(0.3)
    assert len(first) == 1 and all(value > MIN_RSS for value in first.values()), (first, worker.output())

    # One job per process: the worker process exits after the job and a new one replaces it. Its
    # series goes with it ('liveall'), so the page never counts a dead process's memory.
    job = stack.upload(synthetic_pdfs["exams"]).json()
    assert stack.wait_done(job["job_id"])["status"] == "completed"
    deadline = time.monotonic() + 30
    now: dict[str, float] = {}
    while time.monotonic() < deadline:
        now = worker_rss()
        if now and set(now) != set(first):
            break
        time.sleep(0.3)
    assert len(now) == 1 and set(now) != set(first), (first, now, stack.logs())
    assert all(value > MIN_RSS for value in now.values())
    assert not rss_by_pid(stack.client.get("/metrics").text, "worker")  # the worker's own dir


def _client_port(response: httpx.Response) -> int:
    """Local port of the TCP connection that carried ``response``."""
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


def test_idle_keep_alive_connection_survives_past_uvicorns_old_5s_default(
    service_stack: Callable[..., Stack],
) -> None:
    default = service_stack()  # http_keep_alive_s = 120
    short = service_stack(SCHEDGEN_HTTP_KEEP_ALIVE_S="2")  # proves the setting reaches uvicorn
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=300)
    with (
        httpx.Client(base_url=default.base_url, limits=limits) as kept,
        httpx.Client(base_url=short.base_url, limits=limits) as closed,
    ):
        before = (_client_port(kept.get("/healthz")), _client_port(closed.get("/healthz")))
        time.sleep(6)
        after_kept = kept.get("/healthz")
        after_closed = closed.get("/healthz")
        after = (_client_port(after_kept), _client_port(after_closed))
    assert after_kept.status_code == after_closed.status_code == 200
    assert after[0] == before[0]  # the same idle connection was reused
    assert after[1] != before[1]  # the api closed it after 2 s; httpx reconnected
