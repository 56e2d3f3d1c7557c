"""Read process memory (RSS) of the api and workers during a run: from their Prometheus /metrics, or
(when those export no ``*resident_memory_bytes``) from the local processes of the stack under test.

The soak scenario judges memory growth on these samples; every other scenario records them too, so
each report shows what memory did under its load. Series are summed per process role (labels minus
the pid), because workers restart after `worker_max_jobs` jobs and come back with a new pid.

The process fallback is possible because load tests only ever target this machine: the api is the
process listening on the URL's port, and its workers are the processes sharing its database URL.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

RSS_SUFFIX = "resident_memory_bytes"
_VOLATILE_LABELS = {"pid", "instance"}


def parse_rss(text: str, source: str) -> dict[str, float]:
    """``source[role]`` -> bytes for every ``*resident_memory_bytes`` sample in a /metrics page."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.endswith(RSS_SUFFIX):
            continue
        for sample in family.samples:
            labels = {k: v for k, v in sample.labels.items() if k not in _VOLATILE_LABELS}
            role = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            label = f"{source}[{role}]" if role else source
            out[label] = out.get(label, 0.0) + float(sample.value)
    return out


def scrape(urls: dict[str, str], timeout_s: float = 2.0) -> dict[str, float]:
    """One sample from each named /metrics URL (unreachable ones are skipped)."""
    values: dict[str, float] = {}
    for source, url in urls.items():
        try:
            response = httpx.get(url, timeout=timeout_s)
        except httpx.HTTPError:
            continue
        if response.status_code == 200:
            values.update(parse_rss(response.text, source))
    return values


ROLES = ("api", "worker", "reconciler")
STACK_ENV = "SCHEDGEN_DATABASE_URL"


def _role(proc: psutil.Process) -> str | None:
    """api/worker/reconciler from the ``schedgen serve X`` command line of the process or an ancestor."""
    current: psutil.Process | None = proc
    while current is not None:
        try:
            words = current.cmdline()
        except (psutil.Error, OSError):
            return None
        if "serve" in words:
            after = words[words.index("serve") + 1 :]
            return next((word for word in after if word in ROLES), None)
        try:
            current = current.parent()
        except psutil.Error:
            return None
    return None


def stack_processes(port: int) -> list[tuple[str, psutil.Process]]:
    """(role, process) for the api listening on ``port`` and every process of the same stack."""
    listener = None
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
            listener = psutil.Process(conn.pid)
            break
    if listener is None:
        return []
    try:
        marker = listener.environ().get(STACK_ENV)
    except (psutil.Error, OSError):
        marker = None
    found: list[tuple[str, psutil.Process]] = []
    for proc in psutil.process_iter():
        try:
            if marker is None and proc.pid != listener.pid:
                continue
            if marker is not None and proc.environ().get(STACK_ENV) != marker:
                continue
        except (psutil.Error, OSError):
            continue
        role = _role(proc)
        if role is not None:
            found.append((role, proc))
    return found


def process_rss(port: int) -> dict[str, float]:
    """``process[role]`` -> summed RSS bytes of the stack's local processes."""
    out: dict[str, float] = {}
    for role, proc in stack_processes(port):
        try:
            rss = float(proc.memory_info().rss)
        except (psutil.Error, OSError):
            continue
        label = f"process[{role}]"
        out[label] = out.get(label, 0.0) + rss
    return out


class RssSampler:
    """Samples RSS every ``interval_s`` on a thread while the locust subprocess runs."""

    def __init__(self, urls: dict[str, str], interval_s: float, *, api_port: int | None = None) -> None:
        self.urls = urls
        self.api_port = api_port
        self.source = "metrics"
        self.interval_s = interval_s
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def sample(self) -> None:
        """One sample: /metrics first; the stack's processes when /metrics has no RSS."""
        values = scrape(self.urls) if self.source == "metrics" else {}
        if not values and self.api_port is not None:
            values = process_rss(self.api_port)
            if values:
                self.source = "process"
        if values:
            self.samples.append({"t_s": round(time.monotonic() - self._t0, 2), "values": values})

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def stop(self) -> list[dict[str, Any]]:
        """Take a last sample and return all of them."""
        self._stop.set()
        self._thread.join(timeout=10)
        self.sample()
        return self.samples
