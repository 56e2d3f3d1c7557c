"""One load-test run from start to verdict: check the target, prepare PDFs and API keys, run locust,
drain unfinished jobs, analyse, judge thresholds and write the report.

The run's API keys are revoked whatever happens once they exist (success, failure, Ctrl-C); they also
carry an expiry a little past the planned run, for the case nothing can revoke them (SIGKILL).

The CLI calls `run_scenario`; it returns the summary (also written to ``report_dir``) whose
``exit_code`` is 0 when every gating threshold passed and 1 otherwise.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.loadtest import analysis, client, pool, report, rss, runner, target, thresholds
from schedgen_ops.ops.loadtest.keys import KeyProvider, key_ttl_s
from schedgen_ops.ops.loadtest.scenarios import SCENARIOS, expected_sessions, scale_scenario

#: Never create more keys than this for one run; beyond it keys are handed out again (and reported).
MAX_KEYS = 20_000
SEED_JOBS = 5
#: The files the harness and the locustfile exchange in the run's work directory, by the key that
#: names each in the locustfile's config.json: each name is spelled here only.
EXCHANGED = {
    "keys_file": "keys.json",
    "keys_used_file": "keys_used.json",
    "requests_csv": "requests.csv",
    "jobs_jsonl": "jobs.jsonl",
    "abort_file": "aborted.txt",
}
#: The report directory's files, by their key in the summary's ``files``.
REPORTED = {
    "json": "summary.json",
    "markdown": "summary.md",
    "html": "locust.html",
    "stats_csv": "locust_stats.csv",
    "history_csv": "locust_stats_history.csv",
}


@dataclass
class RunOptions:
    """Everything `schedgen loadtest` passes down (already parsed)."""

    scenario: str
    url: str
    report_dir: Path
    keys: KeyProvider
    time_scale: float = 1.0
    users_scale: float = 1.0
    threshold_overrides: list[str] = field(default_factory=list)
    auth_header: str = "X-API-Key"
    auth_prefix: str = ""
    uploads_per_key: int = 9
    metrics_urls: dict[str, str] = field(default_factory=dict)
    pool_size: int = 12
    request_timeout_s: float = 30.0
    abort_after_s: float = 15.0
    progress: Callable[[str], None] = lambda message: None


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def key_count(scenario_name: str, peak_users: int, sessions: int, uploads_per_key: int) -> int:
    """Keys to create: one per simulated client, plus one per ``uploads_per_key`` uploads it makes."""
    del scenario_name
    return min(MAX_KEYS, peak_users + math.ceil(sessions / max(1, uploads_per_key)))


def run_scenario(options: RunOptions) -> dict[str, Any]:
    """Run one scenario and return its summary (see summary.schema.json)."""
    if options.scenario not in SCENARIOS:
        raise SchedgenError(
            f"unknown scenario {options.scenario!r}",
            code="usage",
            hint="one of: " + ", ".join(SCENARIOS),
            exit_code=2,
        )
    scenario = scale_scenario(
        SCENARIOS[options.scenario], time_scale=options.time_scale, users_scale=options.users_scale
    )
    limits = thresholds.merge_thresholds(scenario.thresholds, options.threshold_overrides)
    url = target.check_url(options.url)
    target.preflight(url)

    report_dir = options.report_dir
    report_dir.mkdir(parents=True, exist_ok=True)
    work = report_dir / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()

    pdfs: list[Path] = []
    if "upload" in scenario.mix or "status" in scenario.mix:
        options.progress(f"generating {options.pool_size} timetable PDFs (1-4 pages, all kinds)")
        pdfs = pool.build_pool(work / "pool", size=options.pool_size)

    sessions = expected_sessions(scenario)
    n_keys = key_count(scenario.name, scenario.peak_users, sessions, options.uploads_per_key)
    seeding = "status" in scenario.mix
    # locust's hard timeout (see below) bounds the run; the keys' margin covers seeding and the drain
    ttl_s = key_ttl_s(scenario.duration_s + runner.STOP_TIMEOUT_S + 90)

    api = client.ApiClient(url, auth_header=options.auth_header, auth_prefix=options.auth_prefix)
    try:
        total_keys = n_keys + (SEED_JOBS if seeding else 0)
        where = "through the api's ops endpoint" if options.keys.source == "api" else "in its database"
        options.progress(
            f"creating {total_keys} API keys (one per simulated client) {where}, valid for {ttl_s}s"
        )
        keys = options.keys.create(total_keys, f"loadtest-{scenario.name}", ttl_s)
        seed_keys, keys = (keys[:SEED_JOBS], keys[SEED_JOBS:]) if seeding else ([], keys)
        (work / EXCHANGED["keys_file"]).write_text(json.dumps(keys))

        seeds: list[dict[str, str]] = []
        if seeding:
            options.progress(f"seeding {SEED_JOBS} completed jobs for status users")
            seeds = client.seed_jobs(api, seed_keys, [(p.name, p.read_bytes()) for p in pdfs[:SEED_JOBS]])

        config = {
            "scenario": scenario.to_dict(),
            "pool_dir": str(work / "pool"),
            **{key: str(work / name) for key, name in EXCHANGED.items()},
            "abort_after_s": options.abort_after_s,
            "request_timeout_s": options.request_timeout_s,
            "auth_header": options.auth_header,
            "auth_prefix": options.auth_prefix,
            "uploads_per_key": options.uploads_per_key,
            "status_owner_key": False,
            "seed_jobs": seeds,
            "poll": {"initial_s": 0.25, "max_s": 2.0, "timeout_s": 120.0},
        }
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        argv = runner.locust_argv(
            python=runner.python_executable(),
            locustfile=runner.locustfile(),
            host=url,
            report_dir=report_dir,
            mix=scenario.mix,
        )
        metrics_urls = options.metrics_urls or {"api": f"{url}/metrics"}
        sampler = rss.RssSampler(metrics_urls, interval_s=max(1.0, scenario.duration_s / 60))
        started_at = _now()
        options.progress(
            f"running {scenario.name}: {len(scenario.stages)} stages, {scenario.duration_s:.0f}s, "
            f"peak {scenario.peak_users} users against {url}"
        )
        sampler.start()
        try:
            result = runner.run_locust(
                argv,
                config_path=config_path,
                output_path=report_dir / "locust.out",
                timeout_s=scenario.duration_s + runner.STOP_TIMEOUT_S + 90,
            )
        finally:
            rss_samples = sampler.stop()
        finished_at = _now()

        abort_file = work / EXCHANGED["abort_file"]
        aborted = abort_file.read_text().strip() if abort_file.exists() else None
        if result.timed_out:
            aborted = "locust did not finish in time and was stopped"
        t0, samples = analysis.read_samples(work / EXCHANGED["requests_csv"])
        if result.returncode != 0 and not aborted:
            raise SchedgenError(
                f"locust failed (exit {result.returncode}): {_last_error(result.output_tail)}",
                code="locust_failed",
                hint=f"see {report_dir / 'locust.out'}",
            )
        if not samples:
            raise SchedgenError(
                f"locust sent no requests to {url}" + (f": {aborted}" if aborted else ""),
                code="no_requests",
                hint=f"see {report_dir / 'locust.out'}",
            )
        jobs = analysis.read_jobs(work / EXCHANGED["jobs_jsonl"])
        pending = sum(1 for job in jobs.values() if job.get("status") not in ("completed", "failed"))
        if pending and not aborted:
            drain_s = 60.0 * min(1.0, max(options.time_scale, 0.25))
            options.progress(f"waiting up to {drain_s:.0f}s for {pending} jobs still in flight")
            client.drain(api, jobs, timeout_s=drain_s)
    finally:
        api.close()
        _release_keys(options)

    summary_core = analysis.summarize(
        scenario,
        samples,
        jobs,
        limits,
        duration_s=result.duration_s,
        rss_samples=rss_samples if (rss_samples or scenario.samples_rss) else None,
    )
    if summary_core["rss"] is not None:
        summary_core["rss"]["source"] = sampler.source
    used = _read_json(work / EXCHANGED["keys_used_file"])
    summary: dict[str, Any] = {
        "schema_version": report.SCHEMA_VERSION,
        "scenario": scenario.name,
        "description": scenario.description,
        "url": url,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": round(result.duration_s, 2),
        "time_scale": options.time_scale,
        "users_scale": options.users_scale,
        "peak_users": scenario.peak_users,
        "passed": False,
        "aborted": aborted,
        "exit_code": 1,
        **summary_core,
        "thresholds": [],
        "keys": {"created": len(keys) + len(seed_keys), "reused": int(used.get("reused", 0))},
        "files": {
            **{key: str(report_dir / name) for key, name in REPORTED.items()},
            "requests_csv": str(work / EXCHANGED["requests_csv"]),
        },
    }
    del t0
    summary["thresholds"] = thresholds.evaluate(summary, limits)
    summary["passed"] = thresholds.verdict(summary["thresholds"]) and not aborted
    summary["exit_code"] = 0 if summary["passed"] else 1
    report.write_reports(summary, report_dir)
    return summary


def _release_keys(options: RunOptions) -> None:
    """Revoke the run's keys; a failure is reported, not raised, so it never hides the run's own outcome."""
    try:
        revoked = options.keys.revoke()
    except SchedgenError as exc:
        options.progress(f"warning: {exc.one_line()}")
        return
    if revoked:
        options.progress(f"revoked {revoked} API keys ({options.keys.label})")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"
