"""Read process memory (RSS) of the api and workers during a run from their Prometheus /metrics.

The service exports ``schedgen_process_resident_memory_bytes{role, pid}`` from every live api and
worker process, so the same numbers are there for a local stack and a deployed one. The soak scenario
judges memory growth on these samples; every other scenario records them too, so each report shows
what memory did under its load. Series are summed per process role (labels minus the pid), because
workers restart after `worker_max_jobs` jobs and come back with a new pid. A /metrics page without
any ``*resident_memory_bytes`` yields no sample, and a threshold on RSS then fails for lack of data.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
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


class RssSampler:
    """Samples RSS every ``interval_s`` on a thread while the locust subprocess runs."""

    def __init__(self, urls: dict[str, str], interval_s: float) -> None:
        self.urls = urls
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
        """One sample of every /metrics URL (none when no page exports RSS)."""
        values = scrape(self.urls)
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
