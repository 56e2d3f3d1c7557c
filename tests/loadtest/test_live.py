"""Every scenario at a tiny scale through the real CLI against a real local service (api + workers on
Postgres and Redis): report files exist and parse, the JSON matches its schema, job completion is counted
from jobs the service really completed, thresholds gate the exit code, and a dead api fails fast."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest

from schedgen_ops.ops.loadtest.report import schema
from schedgen_ops.runtime.dataservices import free_port

LiveService = Any  # tests/loadtest/conftest.py's LiveService (conftest modules are not importable)

MIMIC = Path(__file__).with_name("mimic_api.py")

# scenario -> (time scale, users scale): each run lasts 6-7 s of load
TINY = {
    "baseline": ("0.02", "0.5"),
    "upload": ("0.012", "0.05"),
    "status": ("0.02", "0.05"),
    "stress": ("0.01", "0.01"),
    "spike": ("0.02", "0.02"),
    "soak": ("0.001", "0.1"),
}


def loadtest(service: LiveService, *args: str, timeout: float = 120) -> tuple[int, str, str]:
    """The CLI with the database URL and no ops token: these runs create their keys in the database
    (the fallback path; test_keys_live.py runs the ops-endpoint path)."""
    env = {
        **{k: v for k, v in os.environ.items() if k != "SCHEDGEN_OPS_TOKEN"},
        "SCHEDGEN_DATABASE_URL": service.database_url,
        "SCHEDGEN_WORKER_METRICS_PORT": service.env["SCHEDGEN_WORKER_METRICS_PORT"],
    }
    proc = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "loadtest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return proc.returncode, proc.stdout, proc.stderr


def db_statuses(service: LiveService, job_ids: list[str]) -> dict[str, str]:
    with psycopg.connect(service.database_url) as conn:
        rows = conn.execute("SELECT id, status FROM jobs WHERE id = ANY(%s)", (job_ids,)).fetchall()
    return {row[0]: row[1] for row in rows}


@pytest.mark.parametrize("scenario", list(TINY))
def test_scenario_tiny(live_service: LiveService, tmp_path: Path, scenario: str) -> None:
    time_scale, users_scale = TINY[scenario]
    report = tmp_path / "report"
    code, out, err = loadtest(
        live_service,
        scenario,
        "--url",
        live_service.url,
        "--time-scale",
        time_scale,
        "--users-scale",
        users_scale,
        "--report",
        str(report),
        "--json",
    )
    assert code in (0, 1), err + live_service.logs()
    assert "API keys (one per simulated client) in its database" in err
    summary: dict[str, Any] = json.loads(out)
    assert code == summary["exit_code"] == (0 if summary["passed"] else 1)
    assert summary["aborted"] is None, summary["aborted"]
    failed = [ep["name"] for ep in summary["endpoints"] if ep["failures"]]
    assert not failed, f"requests failed on {failed}: see {report / 'locust_failures.csv'}"

    # report files exist, parse, and agree with each other
    on_disk = json.loads((report / "summary.json").read_text())
    assert on_disk == summary
    jsonschema.validate(on_disk, schema())
    assert (report / "summary.md").read_text().startswith(f"# Load test `{scenario}`: ")
    assert "<html" in (report / "locust.html").read_text()[:2000].lower()
    with (report / "locust_stats.csv").open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    # locust stops counting when the shape ends; ours also has sessions finishing in the grace period
    counted = int(rows["Aggregated"]["Request Count"])
    assert 0 < counted <= summary["totals"]["requests"] <= counted * 1.25 + 3
    assert int(rows["Aggregated"]["Failure Count"]) <= summary["totals"]["failures"]
    assert len(summary["stages"]) == len(
        json.loads((report / "run" / "config.json").read_text())["scenario"]["stages"]
    )
    assert summary["keys"]["created"] >= summary["peak_users"] and summary["totals"]["rate_limited"] == 0

    # job completion counted from jobs the service really completed
    uploaded = [
        json.loads(line)["job_id"]
        for line in (report / "run" / "jobs.jsonl").read_text().splitlines()
        if json.loads(line)["event"] == "uploaded"
    ]
    statuses = db_statuses(live_service, uploaded)
    assert len(statuses) == len(uploaded) == summary["jobs"]["uploaded"]
    assert summary["jobs"]["completed"] == sum(1 for s in statuses.values() if s == "completed")
    if "upload" in summary["thresholds"][0]["name"] or scenario in ("upload", "baseline"):
        assert summary["jobs"]["completed"] > 0
        assert summary["jobs"]["completion_ms"]["p95"] > 0

    # scenario-specific findings
    names = {ep["name"] for ep in summary["endpoints"]}
    if scenario == "status":
        assert names == {"all", "status"}
        # The clients revalidate what they saw with If-None-Match, as a browser does: the service
        # answered some polls with 304 (no body), and locust counted none as a failure.
        assert _status_answers(live_service, "304") > 0
    if scenario == "upload":
        assert {"upload", "status", "events", "calendar"} <= names and "health" not in names
    if scenario == "stress":
        assert [s["kind"] for s in summary["stages"]] == ["step"] * 4 + ["recovery"]
        assert isinstance(summary["sustained_users"], int)
        assert summary["recovery"] is not None
        assert {t["name"]: t["gate"] for t in summary["thresholds"]}["upload_p95_ms"] is False
    if scenario == "spike":
        assert summary["spike"]["baseline_p95_ms"] is not None and summary["spike"]["windows"]
    if scenario == "soak":
        rss = summary["rss"]
        assert rss is not None and len(rss["samples"]) >= 2
        # from schedgen_process_resident_memory_bytes on the api's and the worker's /metrics
        assert rss["source"] == "metrics"
        assert {"api[role=api]", "worker[role=worker]"} <= set(rss["growth"]), rss["growth"]
        assert all(value > 10 * 2**20 for value in rss["last"].values()), rss["last"]
        assert {t["name"] for t in summary["thresholds"]} == {"rss_growth", "error_rate", "p95_ms"}


def _status_answers(service: LiveService, code: str) -> float:
    """``schedgen_http_requests_total`` of job status polls answered with ``code``, from /metrics."""
    import httpx

    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    wanted = f'route="/api/jobs/{{job_id}}",status="{code}"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if wanted in line)


def test_impossible_threshold_exits_1(live_service: LiveService, tmp_path: Path) -> None:
    code, out, err = loadtest(
        live_service,
        "upload",
        "--url",
        live_service.url,
        "--time-scale",
        "0.006",
        "--users-scale",
        "0.03",
        "--threshold",
        "upload_p95_ms=1",
        "--report",
        str(tmp_path),
        "--json",
    )
    assert code == 1, err
    results = {t["name"]: t for t in json.loads(out)["thresholds"]}
    assert results["upload_p95_ms"]["limit"] == 1 and results["upload_p95_ms"]["passed"] is False
    assert "FAIL" in (tmp_path / "summary.md").read_text()


def test_stopped_api_fails_fast_with_a_clear_message(live_service: LiveService, tmp_path: Path) -> None:
    started = time.monotonic()
    code, out, err = loadtest(
        live_service,
        "baseline",
        "--url",
        f"http://127.0.0.1:{free_port()}",
        "--report",
        str(tmp_path),
        timeout=30,
    )
    assert code == 1 and out == ""
    assert err.startswith("error: the api at http://127.0.0.1:") and "not reachable" in err
    assert time.monotonic() - started < 15


def test_api_dying_mid_run_aborts_instead_of_hanging(live_service: LiveService, tmp_path: Path) -> None:
    port = free_port()
    mimic = subprocess.Popen(
        [sys.executable, str(MIMIC), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        import httpx

        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        env = {**os.environ, "SCHEDGEN_DATABASE_URL": live_service.database_url}
        runner = subprocess.Popen(
            [
                sys.executable, "-m", "schedgen_ops.cli.main", "loadtest", "baseline",
                "--url", f"http://127.0.0.1:{port}", "--time-scale", "0.5", "--users-scale", "0.5",
                "--abort-after", "3", "--report", str(tmp_path), "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        while (
            not (tmp_path / "run" / "requests.csv").exists()
            or (tmp_path / "run" / "requests.csv").stat().st_size < 200
        ):
            assert runner.poll() is None, runner.communicate()
            time.sleep(0.2)
        mimic.kill()
        killed = time.monotonic()
        out, err = runner.communicate(timeout=60)
        assert time.monotonic() - killed < 30  # a 150 s run, stopped within seconds of the api dying
        assert runner.returncode == 1, err
        summary = json.loads(out)
        assert summary["aborted"].startswith("the api stopped answering")
        assert "aborted" in (tmp_path / "summary.md").read_text()
    finally:
        mimic.kill()
        mimic.wait()
