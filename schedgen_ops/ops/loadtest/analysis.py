"""Turn a run's raw records into the JSON summary: per-endpoint and per-stage figures, job completion,
the stress breaking point and recovery, spike recovery and RSS growth.

Pure functions over plain data: the locustfile writes one line per request and per job event, the
CLI adds drain results and /metrics samples, and everything here is testable without a server.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schedgen_ops.ops.loadtest.scenarios import ENDPOINTS, STEP_THRESHOLDS, Scenario, Stage


@dataclass(frozen=True)
class Sample:
    """One request: seconds since the run started, endpoint short name, latency, outcome."""

    t: float
    endpoint: str
    ms: float
    ok: bool
    status: int = 0


def percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(float(ordered[rank - 1]), 1)


def read_samples(path: Path) -> tuple[float | None, list[Sample]]:
    """(start wall time, samples) from the locustfile's requests CSV (t0 in its ``#t0=`` first line)."""
    t0: float | None = None
    samples: list[Sample] = []
    if not path.exists():
        return None, samples
    with path.open(newline="") as handle:
        for row in csv.reader(handle):
            if not row:
                continue
            if row[0].startswith("#t0="):
                t0 = float(row[0][4:])
                continue
            t, name, ms, ok, status = row[:5]
            samples.append(
                Sample(float(t), ENDPOINTS.get(name, name), float(ms), ok == "1", int(status or 0))
            )
    return t0, samples


def read_jobs(path: Path) -> dict[str, dict[str, Any]]:
    """Job id -> its latest record (uploaded, then completed/failed), from a JSON-lines file."""
    jobs: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return jobs
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        job = jobs.setdefault(record["job_id"], {"job_id": record["job_id"]})
        if record["event"] == "uploaded":
            job.setdefault("uploaded_at", record["t"])
            job.setdefault("key", record.get("key"))
            job.setdefault("status", "queued")
        elif job.get("status") not in ("completed", "failed"):
            job["status"] = record["event"]
            if "completion_ms" in record:
                job["completion_ms"] = record["completion_ms"]
    return jobs


def endpoint_stats(name: str, samples: Sequence[Sample], duration_s: float) -> dict[str, Any]:
    """Request count, failures, error rate, throughput and latency percentiles of ``samples``."""
    latencies = [s.ms for s in samples]
    failures = sum(1 for s in samples if not s.ok)
    count = len(samples)
    return {
        "name": name,
        "requests": count,
        "failures": failures,
        "rate_limited": sum(1 for s in samples if s.status == 429),
        "error_rate": round(failures / count, 5) if count else None,
        "rps": round(count / duration_s, 3) if duration_s > 0 else None,
        "min_ms": round(min(latencies), 1) if latencies else None,
        "p50_ms": percentile(latencies, 50),
        "p90_ms": percentile(latencies, 90),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": round(max(latencies), 1) if latencies else None,
    }


def in_window(samples: Iterable[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.t < end]


def window_figures(samples: Sequence[Sample]) -> dict[str, float | None]:
    """What a stress step is judged on: overall/upload/status p95 and the error rate."""
    count = len(samples)
    return {
        "requests": count,
        "p95_ms": percentile([s.ms for s in samples], 95),
        "upload_p95_ms": percentile([s.ms for s in samples if s.endpoint == "upload"], 95),
        "status_p95_ms": percentile([s.ms for s in samples if s.endpoint == "status"], 95),
        "error_rate": round(sum(1 for s in samples if not s.ok) / count, 5) if count else None,
    }


def crossed(figures: dict[str, float | None], thresholds: dict[str, float]) -> list[str]:
    """Names of the step thresholds ``figures`` cross (figures without data never cross)."""
    out = []
    for name in STEP_THRESHOLDS:
        limit = thresholds.get(name)
        value = figures.get(name)
        if limit is not None and value is not None and value >= limit:
            out.append(name)
    return out


def stage_stats(scenario: Scenario, samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Per stage: its plan (users, window) and what happened in it after its ramp."""
    out = []
    for stage, start, end in scenario.windows():
        judged = in_window(samples, start + stage.ramp_s, end)
        figures = window_figures(judged)
        out.append(
            {
                "name": stage.name,
                "kind": stage.kind,
                "users": stage.users,
                "start_s": round(start, 3),
                "end_s": round(end, 3),
                "ramp_s": stage.ramp_s,
                **figures,
                "failures": sum(1 for s in judged if not s.ok),
            }
        )
    return out


def breaking_point(
    stages: list[dict[str, Any]], thresholds: dict[str, float]
) -> tuple[dict[str, Any] | None, int]:
    """(first step crossing a threshold, largest step users sustained before it).

    Steps are judged after their ramp; a step with no requests at all is a break (nothing got through).
    """
    sustained = 0
    for stage in stages:
        if stage["kind"] != "step":
            continue
        names = crossed(stage, thresholds)
        if stage["requests"] == 0:
            names = ["no_requests"]
        if names:
            return (
                {
                    "stage": stage["name"],
                    "users": stage["users"],
                    "crossed": names,
                    "p95_ms": stage["p95_ms"],
                    "upload_p95_ms": stage["upload_p95_ms"],
                    "status_p95_ms": stage["status_p95_ms"],
                    "error_rate": stage["error_rate"],
                },
                sustained,
            )
        sustained = stage["users"]
    return None, sustained


def recovery(
    scenario: Scenario, samples: Sequence[Sample], thresholds: dict[str, float]
) -> dict[str, Any] | None:
    """Whether the second half of the recovery stage is back within the step thresholds."""
    for stage, start, end in scenario.windows():
        if stage.kind != "recovery":
            continue
        judged_from = start + max(stage.ramp_s, stage.duration_s / 2)
        figures = window_figures(in_window(samples, judged_from, end))
        names = crossed(figures, thresholds)
        passed = figures["requests"] != 0 and not names
        return {
            "stage": stage.name,
            "from_s": round(judged_from, 3),
            "passed": passed,
            "crossed": names,
            **figures,
        }
    return None


def spike_recovery(scenario: Scenario, samples: Sequence[Sample]) -> dict[str, Any] | None:
    """Seconds after the spike until latency is back to the pre-spike p95 and stays there.

    Back = a window's p95 <= max(1.5 x baseline p95, baseline + 50 ms) with no failures; the
    recovery time is the start of the first window from which every later window is back.
    """
    windows = scenario.windows()
    before = next(((s, a, b) for s, a, b in windows if s.kind == "before"), None)
    spike = next(((s, a, b) for s, a, b in windows if s.kind == "spike"), None)
    after = next(((s, a, b) for s, a, b in windows if s.kind == "after"), None)
    if before is None or spike is None or after is None:
        return None
    stage_b, start_b, end_b = before
    baseline = percentile([s.ms for s in in_window(samples, start_b + stage_b.ramp_s, end_b)], 95)
    spike_end = spike[2]
    width = max(1.0, after[0].duration_s / 18)
    result: dict[str, Any] = {
        "baseline_p95_ms": baseline,
        "spike_p95_ms": percentile([s.ms for s in in_window(samples, spike[1], spike_end)], 95),
        "window_s": round(width, 3),
        "limit_ms": None,
        "recovery_s": None,
        "windows": [],
    }
    if baseline is None:
        return result
    limit = max(baseline * 1.5, baseline + 50)
    result["limit_ms"] = round(limit, 1)
    t = spike_end
    windows_out: list[dict[str, Any]] = []
    while t < after[2] - 1e-9:
        chunk = in_window(samples, t, min(t + width, after[2]))
        p95 = percentile([s.ms for s in chunk], 95)
        ok = bool(chunk) and p95 is not None and p95 <= limit and all(s.ok for s in chunk)
        windows_out.append(
            {"start_s": round(t - spike_end, 3), "requests": len(chunk), "p95_ms": p95, "back": ok}
        )
        t += width
    result["windows"] = windows_out
    # First window from which every later window with traffic is back.
    for index, window in enumerate(windows_out):
        if not window["back"]:
            continue
        rest = [w for w in windows_out[index:] if w["requests"]]
        if all(w["back"] for w in rest):
            result["recovery_s"] = window["start_s"]
            break
    return result


def job_stats(jobs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Uploaded/completed/failed/incomplete counts, completion rate and upload->completed times."""
    uploaded = [job for job in jobs.values() if "uploaded_at" in job]
    completed = [job for job in uploaded if job.get("status") == "completed"]
    failed = [job for job in uploaded if job.get("status") == "failed"]
    times = [float(job["completion_ms"]) for job in completed if "completion_ms" in job]
    return {
        "uploaded": len(uploaded),
        "completed": len(completed),
        "failed": len(failed),
        "incomplete": len(uploaded) - len(completed) - len(failed),
        "completion_rate": round(len(completed) / len(uploaded), 5) if uploaded else None,
        "completion_ms": {
            "p50": percentile(times, 50),
            "p95": percentile(times, 95),
            "max": round(max(times), 1) if times else None,
        },
    }


def rss_stats(samples: list[dict[str, Any]], warmup_s: float) -> dict[str, Any] | None:
    """Growth of each RSS series from the first sample after warm-up to the last one."""
    if not samples:
        return None
    usable = [s for s in samples if s["t_s"] >= warmup_s] or samples
    first, last = usable[0], usable[-1]
    growth = {}
    for label, start in first["values"].items():
        end = last["values"].get(label)
        if end is not None and start > 0:
            growth[label] = round((end - start) / start, 5)
    return {
        "warmup_s": warmup_s,
        "samples": samples,
        "first": first["values"],
        "last": last["values"],
        "growth": growth,
        "max_growth": max(growth.values()) if growth else None,
    }


def summarize(
    scenario: Scenario,
    samples: Sequence[Sample],
    jobs: dict[str, dict[str, Any]],
    thresholds: dict[str, float],
    *,
    duration_s: float,
    rss_samples: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Everything but the run metadata and threshold verdicts (added by the caller)."""
    duration = duration_s or scenario.duration_s
    endpoints = [endpoint_stats("all", samples, duration)]
    for name in sorted({s.endpoint for s in samples}):
        endpoints.append(endpoint_stats(name, [s for s in samples if s.endpoint == name], duration))
    totals = endpoints[0]
    stages = stage_stats(scenario, samples)
    summary: dict[str, Any] = {
        "totals": {
            key: totals[key]
            for key in ("requests", "failures", "rate_limited", "error_rate", "rps", "p95_ms")
        },
        "endpoints": endpoints,
        "stages": stages,
        "jobs": job_stats(jobs),
        "breaking_point": None,
        "sustained_users": None,
        "recovery": None,
        "spike": None,
        "rss": None,
    }
    if any(stage.kind == "step" for stage in scenario.stages):
        point, sustained = breaking_point(stages, thresholds)
        summary["breaking_point"] = point
        summary["sustained_users"] = sustained
        summary["recovery"] = recovery(scenario, samples, thresholds)
    if any(stage.kind == "spike" for stage in scenario.stages):
        summary["spike"] = spike_recovery(scenario, samples)
    if rss_samples is not None:
        first: Stage = scenario.stages[0]
        summary["rss"] = rss_stats(rss_samples, warmup_s=first.ramp_s + min(60.0, first.duration_s / 10))
    return summary
