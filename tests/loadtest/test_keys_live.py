"""Where a load test gets its per-client API keys: minted over HTTP by the real api with the ops token
(no database access), revoked at the end of the run, on failure and on interrupt; the database as the
fallback; and a clear usage error when neither is available."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.loadtest.keys import (
    DatabaseKeys,
    EndpointKeys,
    key_provider,
    key_ttl_s,
    project_ops_token,
)
from schedgen_ops.ops.loadtest.runner import STOP_TIMEOUT_S
from schedgen_ops.runtime.dataservices import free_port
from schedgen_ops.service.clients import LOADTEST_MAX_COUNT, LOADTEST_TTL_MAX_S

LiveService = Any  # tests/loadtest/conftest.py's LiveService (conftest modules are not importable)

MIMIC = Path(__file__).with_name("mimic_api.py")


def _env(**extra: str) -> dict[str, str]:
    """The caller's environment without any service settings: the CLI sees only what a test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    env.update(extra)
    return env


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "schedgen_ops.cli.main", "loadtest", *args]


def key_rows(service: LiveService, keys: list[str]) -> list[dict[str, Any]]:
    hashes = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
    with psycopg.connect(service.database_url) as conn:
        cur = conn.execute(
            "SELECT loadtest_label, expires_at, revoked_at, now() FROM api_keys WHERE key_hash = ANY(%s)",
            (hashes,),
        )
        return [{"label": r[0], "expires_at": r[1], "revoked_at": r[2], "now": r[3]} for r in cur.fetchall()]


def label_counts(service: LiveService, label: str) -> tuple[int, int]:
    """(keys, revoked keys) of a label."""
    with psycopg.connect(service.database_url) as conn:
        row = conn.execute(
            "SELECT count(*), count(revoked_at) FROM api_keys WHERE loadtest_label = %s", (label,)
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def upload_status(service: LiveService, key: str) -> int:
    """Status of one upload with ``key``: 202 while the key works, 401 once revoked or expired."""
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    data = render_pdf(generate_timetable("exams", seed=3, n_rows=2))
    response = httpx.post(
        f"{service.url}/api/uploads",
        headers={"X-API-Key": key},
        files={"file": ("t.pdf", data, "application/pdf")},
        timeout=30,
    )
    return response.status_code


def test_run_with_the_ops_token_mints_its_keys_over_http_and_revokes_them(
    live_service: LiveService, tmp_path: Path
) -> None:
    # No SCHEDGEN_DATABASE_URL anywhere: HTTP to the api is all this run has, as CI has of staging.
    proc = subprocess.run(
        _cli(
            "baseline", "--url", live_service.url, "--ops-token", live_service.ops_token,
            "--time-scale", "0.02", "--users-scale", "0.5", "--report", str(tmp_path), "--json",
        ),
        env=_env(SCHEDGEN_WORKER_METRICS_PORT=live_service.env["SCHEDGEN_WORKER_METRICS_PORT"]),
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode in (0, 1), proc.stderr + live_service.logs()
    assert "through the api's ops endpoint" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["aborted"] is None
    assert not [ep["name"] for ep in summary["endpoints"] if ep["failures"]], proc.stderr
    assert summary["totals"]["rate_limited"] == 0 and summary["jobs"]["completed"] > 0

    keys: list[str] = json.loads((tmp_path / "run" / "keys.json").read_text())
    rows = key_rows(live_service, keys)
    assert len(rows) == len(keys) == len(set(keys))
    labels = {row["label"] for row in rows}
    assert len(labels) == 1 and next(iter(labels)).startswith("loadtest-baseline-")
    label = next(iter(labels))
    # every key of the label (seed keys included) was revoked at the end, and all carried an expiry
    assert label_counts(live_service, label) == (summary["keys"]["created"],) * 2
    assert f"revoked {summary['keys']['created']} API keys ({label})" in proc.stderr
    lifetime = dt.timedelta(seconds=key_ttl_s(6 + STOP_TIMEOUT_S + 90))  # short-lived, not the 2 h default
    for row in rows:
        assert row["revoked_at"] is not None
        assert row["now"] < row["expires_at"] < row["now"] + lifetime
    assert upload_status(live_service, keys[0]) == 401


def test_wrong_ops_token_fails_before_any_load_and_says_how_to_fix_it(
    live_service: LiveService, tmp_path: Path
) -> None:
    proc = subprocess.run(
        _cli("baseline", "--url", live_service.url, "--report", str(tmp_path)),
        env=_env(SCHEDGEN_OPS_TOKEN="not-the-token"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the api at http://127.0.0.1:"), proc.stderr
    assert "refused to mint the run's API keys: 401 unauthorized" in last and "--ops-token" in last
    assert "warning" not in proc.stderr and "revoke" not in proc.stderr  # nothing was minted
    assert not (tmp_path / "run" / "requests.csv").exists()


def test_neither_token_nor_database_is_a_usage_error_naming_both_fixes(tmp_path: Path) -> None:
    proc = subprocess.run(
        _cli("baseline", "--url", f"http://127.0.0.1:{free_port()}", "--report", str(tmp_path)),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no way to create the run's API keys"), proc.stderr
    assert "--ops-token" in proc.stderr and "SCHEDGEN_OPS_TOKEN" in proc.stderr
    assert "--database-url" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def _sigint_deliverable() -> None:
    """preexec_fn for a child the test interrupts with SIGINT: an ignored or blocked SIGINT survives exec,
    and the whole-suite run (after the e2e stacks) was seen to hand one down, so reset both."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_interrupted_run_revokes_its_keys(
    live_service: LiveService, tmp_path: Path, signum: signal.Signals
) -> None:
    runner = subprocess.Popen(
        _cli(
            "baseline", "--url", live_service.url, "--time-scale", "0.5", "--users-scale", "0.3",
            "--report", str(tmp_path),
        ),
        env=_env(SCHEDGEN_OPS_TOKEN=live_service.ops_token),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_sigint_deliverable,
    )  # fmt: skip
    try:
        requests_csv = tmp_path / "run" / "requests.csv"
        deadline = time.monotonic() + 60
        while not requests_csv.exists() or requests_csv.stat().st_size < 200:  # load is running
            assert runner.poll() is None, runner.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.2)
        keys: list[str] = json.loads((tmp_path / "run" / "keys.json").read_text())
        assert all(row["revoked_at"] is None for row in key_rows(live_service, keys))
        runner.send_signal(signum)
        _, err = runner.communicate(timeout=60)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert runner.returncode == 1, err
    assert "error: the load test was interrupted" in err
    rows = key_rows(live_service, keys)
    assert len(rows) == len(keys) and all(row["revoked_at"] is not None for row in rows)
    assert upload_status(live_service, keys[-1]) == 401


def test_endpoint_keys_batch_above_the_per_call_limit_under_one_label(live_service: LiveService) -> None:
    count = LOADTEST_MAX_COUNT * 2 + 37
    provider = EndpointKeys(live_service.url, live_service.ops_token)
    keys = provider.create(count, "loadtest-batch", 300)
    assert len(keys) == len(set(keys)) == count
    assert provider.label.startswith("loadtest-batch-")
    assert label_counts(live_service, provider.label) == (count, 0)
    assert upload_status(live_service, keys[-1]) == 202
    assert provider.revoke() == count
    assert label_counts(live_service, provider.label) == (count, count)
    assert upload_status(live_service, keys[-1]) == 401


def test_an_api_without_the_endpoint_falls_back_to_the_database(live_service: LiveService) -> None:
    port = free_port()
    mimic = subprocess.Popen(
        [sys.executable, str(MIMIC), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mimic api did not start"
            time.sleep(0.1)
        notes: list[str] = []
        without = EndpointKeys(url, "any-token")
        with pytest.raises(SchedgenError) as info:
            without.create(3, "loadtest-old", 300)
        assert "404" in info.value.message and "--database-url" in (info.value.hint or "")
        provider = key_provider(
            url, ops_token="any-token", database_url=live_service.database_url, progress=notes.append
        )
        keys = provider.create(3, "loadtest-old", 300)
        assert provider.source == "database" and any("creating the keys in its database" in n for n in notes)
        assert upload_status(live_service, keys[0]) == 202  # they are real keys of the real service
        rows = key_rows(live_service, keys)
        assert len(rows) == 3 and {row["label"] for row in rows} == {provider.label}
        assert all(row["expires_at"] is not None for row in rows)
        assert provider.revoke() == 3
        assert all(row["revoked_at"] is not None for row in key_rows(live_service, keys))
    finally:
        mimic.kill()
        mimic.wait()


def test_key_source_choice_and_lifetime() -> None:
    url = "http://127.0.0.1:1"
    assert isinstance(key_provider(url, ops_token="t", database_url="postgresql://x"), EndpointKeys)
    assert isinstance(key_provider(url, ops_token="", database_url="postgresql://x"), DatabaseKeys)
    with pytest.raises(SchedgenError) as info:
        key_provider(url, ops_token="", database_url="")
    assert info.value.code == "no_key_source" and info.value.exit_code == 2
    assert key_ttl_s(100) == 700 and key_ttl_s(0) == 600 and key_ttl_s(10**6) == LOADTEST_TTL_MAX_S


def test_project_ops_token_is_read_from_the_project_secrets(tmp_path: Path) -> None:
    init = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "--project", str(tmp_path), "init"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert init.returncode == 0, init.stderr
    from schedgen_ops.config.secrets import load_secrets

    token = load_secrets(tmp_path)["OPS_TOKEN"]
    assert token and project_ops_token("local", tmp_path) == token
    assert project_ops_token(None, tmp_path) == ""  # --url: nothing is read from the project
    assert project_ops_token("local", tmp_path / "elsewhere") == ""
    (tmp_path / ".schedgen" / "secrets.env").chmod(0o644)
    with pytest.raises(SchedgenError) as info:
        project_ops_token("local", tmp_path)
    assert info.value.code == "secrets_mode"
