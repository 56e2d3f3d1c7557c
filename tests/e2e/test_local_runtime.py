"""The local runtime for real: `schedgen up` from an empty directory, uploads through the stack, scaling
with jobs in flight, a failing deploy rolled back automatically, the deploy lock, and `down` leaving no
process behind. Real supervisord, Postgres (as nobody when root), Redis, api and RQ workers.

The tests run in file order against one stack (module fixture) to keep the whole file near 2-3 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from schedgen_ops.runtime.dataservices import free_port, free_port_block, service_tempdir

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


class Stack:
    def __init__(self, project: Path, api_port: int, config_env: dict[str, str]):
        self.project = project
        self.api = f"http://127.0.0.1:{api_port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
        self.env.update(config_env)

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        env = self.env
        return subprocess.run(
            [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(self.project), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 240) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, f"schedgen {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def supervisord_pid(self) -> int | None:
        try:
            return int((self.project / ".schedgen" / "run" / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return None

    def tree_pids(self) -> list[int]:
        pid = self.supervisord_pid()
        if pid is None or not psutil.pid_exists(pid):
            return []
        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]

    def token(self) -> str:
        text = (self.project / ".schedgen" / "secrets.env").read_text()
        return next(line.split("=", 1)[1] for line in text.splitlines() if line.startswith("OPS_TOKEN="))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    root = service_tempdir("schedgen-e2e-local-")
    project = root / "project"  # empty: `schedgen up` must make it a project
    project.mkdir()
    api_port = free_port_block(2)
    # The machine is shared: ports and limits come from SCHEDGEN_<SECTION>__<KEY> environment overrides
    # (config precedence: profile < schedgen.yaml < env < --set), so the project directory starts empty.
    config_env = {
        "SCHEDGEN_PORTS__API": str(api_port),
        "SCHEDGEN_PORTS__POSTGRES": str(free_port()),
        "SCHEDGEN_PORTS__REDIS": str(free_port()),
        "SCHEDGEN_PORTS__PROMETHEUS": str(free_port()),
        "SCHEDGEN_WORKER__MAX_REPLICAS": "4",
        "SCHEDGEN_WORKER__METRICS_PORT": str(free_port_block(8)),  # blue + green slots
        "SCHEDGEN_API__MAX_REPLICAS": "3",
        "SCHEDGEN_FRONTDOOR__UPSTREAM_PORT": str(free_port_block(6)),
        "SCHEDGEN_SERVICE__WORKER_PROCESSES": "1",
        "SCHEDGEN_SERVICE__RATE_UPLOADS": "100000/hour",
        "SCHEDGEN_SERVICE__RATE_STATUS": "100000/minute",
        "SCHEDGEN_SERVICE__RATE_REQUESTS": "100000/minute",
    }
    s = Stack(project, api_port, config_env)
    try:
        yield s
    finally:
        pids = s.tree_pids()
        s.cli("down", timeout=120)
        for pid in pids:
            if psutil.pid_exists(pid):
                with_suppress_kill(pid)
        shutil.rmtree(root, ignore_errors=True)


def with_suppress_kill(pid: int) -> None:
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).kill()


def _sample(seed: int, pages: int = 1) -> bytes:
    from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

    return render_pdf(generate_timetable("lectures", seed=seed, pages=pages))


def _upload(client: httpx.Client, stack: Stack, pdf: bytes, name: str = "t.pdf") -> dict[str, str]:
    response = client.post(
        f"{stack.api}/api/uploads", files={"file": (name, pdf, "application/pdf")}, timeout=30
    )
    assert response.status_code == 202, response.text
    body: dict[str, str] = response.json()
    return body


def _wait_done(
    client: httpx.Client, stack: Stack, job_ids: list[str], timeout_s: float = 120
) -> dict[str, dict]:
    deadline = time.monotonic() + timeout_s
    final: dict[str, dict] = {}
    while time.monotonic() < deadline and len(final) < len(job_ids):
        for job_id in job_ids:
            if job_id in final:
                continue
            body = client.get(f"{stack.api}/api/jobs/{job_id}", timeout=10).json()
            if body["status"] in ("completed", "failed"):
                final[job_id] = body
        time.sleep(0.3)
    missing = [j for j in job_ids if j not in final]
    assert not missing, f"{len(missing)} job(s) never finished: {missing[:3]}"
    return final


class Load:
    """Steady clients through the front door while an operation runs: health checks (~20/s) and an upload
    every 0.5 s, in a bounded loop (at most `max_s`). Any connection error or 5xx is a failed request, except
    a reset of an idle keep-alive connection by a reload, which is resent once as a browser does (counted)."""

    def __init__(self, stack: Stack, max_s: float = 400):
        import threading

        self.stack, self.max_s = stack, max_s
        self.ok = 0
        self.failures: list[str] = []
        self.stale_retries: list[str] = []
        self.jobs: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _call(self, client: httpx.Client, method: str, path: str, **kw: object) -> httpx.Response | None:
        url = f"{self.stack.api}{path}"
        try:
            try:
                response = client.request(method, url, timeout=30, **kw)  # type: ignore[arg-type]
            except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError) as exc:
                # A graceful Caddy reload closes idle keep-alive connections; a request sent on one at that
                # instant is reset before the server read it. Browsers resend such a request once on a new
                # connection (RFC 9112 section 9.3.1); so does this client, and the count is reported.
                self.stale_retries.append(f"{method} {path}: {type(exc).__name__} {exc}")
                response = client.request(method, url, timeout=30, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.failures.append(f"{method} {path}: {type(exc).__name__} {exc}")
            return None
        if response.status_code >= 500:
            self.failures.append(f"{method} {path}: HTTP {response.status_code} {response.text[:200]}")
            return None
        self.ok += 1
        return response

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_s
        next_upload = 0.0
        seed = 5000
        with httpx.Client() as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                self._call(client, "GET", "/healthz")
                if time.monotonic() >= next_upload:
                    next_upload = time.monotonic() + 0.5
                    seed += 1
                    files = {"file": (f"l{seed}.pdf", _sample(seed), "application/pdf")}
                    response = self._call(client, "POST", "/api/uploads", files=files)
                    if response is not None and response.status_code == 202:
                        self.jobs.append(response.json()["job_id"])
                    elif response is not None:
                        self.failures.append(f"upload: HTTP {response.status_code} {response.text[:200]}")
                time.sleep(0.05)

    def assert_clean(self, min_ok: int = 20) -> None:
        assert self.failures == [], (
            f"{len(self.failures)} failed request(s) of {self.ok + len(self.failures)}"
        )
        # One reload can catch at most the client's one idle connection; more would be another fault.
        assert len(self.stale_retries) <= 3, f"{len(self.stale_retries)} resets: {self.stale_retries}"
        assert self.ok >= min_ok, f"only {self.ok} requests ran: the load did not overlap the operation"
        with httpx.Client() as client:
            final = _wait_done(client, self.stack, self.jobs, timeout_s=180)
        assert sorted({f["status"] for f in final.values()}) == ["completed"], "a job was lost or failed"
        print(
            f"load: {self.ok} requests, 0 failed, {len(self.stale_retries)} resent after a keep-alive reset, "
            f"{len(self.jobs)} uploads all completed"
        )


def _api_worker_pids(stack: Stack) -> dict[str, int]:
    status = json.loads(stack.ok("status", "--json"))
    return {
        p["name"]: p["pid"]
        for s in status["services"]
        if s["name"] in ("api", "pdf-worker")
        for p in s["processes"]
    }


def _program_pids(stack: Stack) -> dict[str, int]:
    status = json.loads(stack.ok("status", "--json"))
    return {p["name"]: p["pid"] for s in status["services"] for p in s["processes"]}


def test_up_from_an_empty_project_then_idempotent(stack: Stack) -> None:
    assert list(stack.project.iterdir()) == []
    started = time.monotonic()
    result = json.loads(stack.ok("up", "--json", timeout=300))
    took = time.monotonic() - started
    assert result["urls"] == {"api": stack.api}  # the front door's address
    assert result["services"]["api"] == {"desired": 1, "running": 1}
    assert result["services"]["pdf-worker"] == {"desired": 2, "running": 2}
    assert (stack.project / ".schedgen" / "secrets.env").stat().st_mode & 0o777 == 0o600
    assert (stack.project / "schedgen.yaml").exists()
    assert httpx.get(f"{stack.api}/readyz", timeout=5).status_code == 200
    pids_before = _program_pids(stack)
    again = json.loads(stack.ok("up", "--json"))
    assert again["unchanged"] is True and again["release"] == result["release"]
    assert _program_pids(stack) == pids_before, "a second `up` restarted processes"
    deadline = time.monotonic() + 60  # `up` waits for one worker heartbeat; the second may follow later
    while True:
        status = json.loads(stack.ok("status", "--json"))
        by_name = {s["name"]: s for s in status["services"]}
        if by_name["pdf-worker"]["processes"][0]["health"] == "2 live" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert by_name["postgres"]["running"] == 1 and by_name["redis"]["running"] == 1
    assert all(p["pid"] and p["memory_bytes"] > 0 for p in by_name["pdf-worker"]["processes"])
    assert [p["health"].split(",")[:2] for p in by_name["api"]["processes"]] == [["ready", " in rotation"]]
    assert by_name["frontdoor"]["health"] == "ok", by_name["frontdoor"]
    assert by_name["frontdoor"]["processes"][0]["health"].startswith(f"ready, {stack.api}, 1 upstream")
    assert by_name["pdf-worker"]["health"] == "ok" and by_name["api"]["health"] == "ok"
    assert by_name["pdf-worker"]["processes"][0]["health"] == "2 live"  # heartbeats seen through /api/queue
    print(f"up from empty project: {took:.1f}s")


def test_upload_through_the_stack(stack: Stack) -> None:
    with httpx.Client() as client:
        accepted = _upload(client, stack, _sample(1))
        final = _wait_done(client, stack, [accepted["job_id"]])
        assert final[accepted["job_id"]]["status"] == "completed"
        events = client.get(f"{stack.api}{accepted['events_url']}", timeout=10).json()
        assert sum(len(t["events"]) for t in events["timetables"]) > 0
        # Lectures repeat weekly: the calendar needs the semester whose dates bound them.
        ics = client.get(f"{stack.api}{accepted['calendar_url']}?semester=S2", timeout=10)
        assert ics.status_code == 200, ics.text
        assert ics.text.startswith("BEGIN:VCALENDAR") and "BEGIN:VEVENT" in ics.text
    assert "pdf-worker" in stack.ok("logs", "pdf-worker", "-n", "5")


def test_scale_workers_2_4_1_with_jobs_in_flight(stack: Stack) -> None:
    from concurrent.futures import ThreadPoolExecutor

    pdfs = [_sample(100 + i, pages=6) for i in range(48)]
    with httpx.Client() as client:
        jobs = [_upload(client, stack, pdf, f"s{i}.pdf")["job_id"] for i, pdf in enumerate(pdfs[:8])]
        stack.ok("scale", "pdf-worker=4")
        status = json.loads(stack.ok("status", "--json"))
        workers = next(s for s in status["services"] if s["name"] == "pdf-worker")
        assert workers["desired"] == 4 and workers["running"] == 4
        with ThreadPoolExecutor(8) as pool:  # a burst, so the four workers are busy at the scale-down
            jobs += [a["job_id"] for a in pool.map(lambda p: _upload(client, stack, p), pdfs[8:])]
        before = [client.get(f"{stack.api}/api/jobs/{j}", timeout=10).json()["status"] for j in jobs]
        stack.ok("scale", "pdf-worker=1")  # returns once the stopped workers have finished their jobs
        final = _wait_done(client, stack, jobs)
    assert any(s != "completed" for s in before), "all jobs finished before the scale-down: nothing in flight"
    assert sorted({f["status"] for f in final.values()}) == ["completed"], final
    assert all(f["attempts"] == 1 for f in final.values()), "a scale-down interrupted a job (it was retried)"
    status = json.loads(stack.ok("status", "--json"))
    workers = next(s for s in status["services"] if s["name"] == "pdf-worker")
    assert workers["desired"] == 1 and workers["running"] == 1
    refused = stack.cli("scale", "pdf-worker=5")
    assert refused.returncode == 1 and "outside the profile's bounds 1..4" in refused.stderr


def test_deploy_failing_its_gate_never_touches_the_serving_replicas(stack: Stack) -> None:
    live = json.loads(stack.ok("releases", "--json"))["current"]
    serving = _api_worker_pids(stack)
    with Load(stack) as load:
        result = stack.cli(
            "deploy",
            "--set",
            "service.readiness_timeout_s=0.0001",
            "--gate-timeout",
            "10",
            "--no-canary",
            timeout=300,
        )
    load.assert_clean()
    assert _api_worker_pids(stack) == serving, "a failed deploy restarted a serving process"
    assert result.returncode == 1, result.stdout + result.stderr
    assert "failed its health gate" in result.stderr and f"{live} kept serving" in result.stderr
    releases = json.loads(stack.ok("releases", "--json"))
    assert releases["current"] == live
    assert releases["releases"][-1]["status"] == "failed"
    assert httpx.get(f"{stack.api}/readyz", timeout=5).status_code == 200
    with httpx.Client() as client:
        accepted = _upload(client, stack, _sample(7))
        assert _wait_done(client, stack, [accepted["job_id"]])[accepted["job_id"]]["status"] == "completed"
    audit = [json.loads(line) for line in stack.ok("audit", "--json", "-n", "3").splitlines()]
    assert audit[-1]["action"] == "deploy" and audit[-1]["result"] == "failed, previous kept serving"
    assert audit[-1]["rolled_back_to"] == live


def test_deploy_under_load_drops_nothing_and_a_second_is_refused(stack: Stack) -> None:
    env = stack.env
    before = _api_worker_pids(stack)
    load = Load(stack).__enter__()
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "schedgen_ops.cli.main",
            "-P",
            str(stack.project),
            "deploy",
            "--set",
            "service.log_level=DEBUG",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lock = stack.project / ".schedgen" / "deploy.lock"
    deadline = time.monotonic() + 30
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), "the first deploy never took the lock"
    second = stack.cli("deploy")
    assert second.returncode == 1
    assert "deploy lock is held" in second.stderr and f"(pid {first.pid})" in second.stderr
    assert stack.cli("scale", "pdf-worker=2").returncode == 1
    out, err = first.communicate(timeout=300)
    load.__exit__(None)
    assert first.returncode == 0, out + err
    load.assert_clean()
    after = _api_worker_pids(stack)
    assert not set(before.values()) & set(after.values()), (
        f"not every api/worker was replaced: {before} {after}"
    )
    assert len([n for n in after if n.startswith("api-")]) == len([n for n in before if n.startswith("api-")])
    releases = json.loads(stack.ok("releases", "--json"))
    assert (
        releases["releases"][-1]["status"] == "live" and releases["current"] == releases["releases"][-1]["id"]
    )
    assert not lock.exists()


def test_manual_rollback_puts_the_earlier_release_back(stack: Stack) -> None:
    before = json.loads(stack.ok("releases", "--json"))
    live = before["current"]
    earlier = [r["id"] for r in before["releases"] if r["status"] == "superseded"][-1]
    with Load(stack) as load:
        out = stack.ok("rollback", "--no-canary")
    load.assert_clean()
    assert f"release {earlier} is live again" in out
    after = json.loads(stack.ok("releases", "--json"))
    assert after["current"] == earlier
    assert {r["id"]: r["status"] for r in after["releases"]}[live] == "rolled-back"
    assert httpx.get(f"{stack.api}/readyz", timeout=5).status_code == 200
    bad = stack.cli("rollback", "20990101-000000-abcdef")
    assert bad.returncode == 1 and "no release" in bad.stderr


def test_scale_api_1_3_1_under_load(stack: Stack) -> None:
    with Load(stack) as load:
        stack.ok("scale", "api=3")
        status = json.loads(stack.ok("status", "--json"))
        api = next(s for s in status["services"] if s["name"] == "api")
        assert api["running"] == 3 and api["health"] == "ok", api
        assert all(" in rotation" in p["health"] for p in api["processes"]), api
        door = next(s for s in status["services"] if s["name"] == "frontdoor")
        assert "3 upstream(s)" in door["processes"][0]["health"]
        time.sleep(2)  # traffic through three replicas
        stack.ok("scale", "api=1")
    load.assert_clean()
    status = json.loads(stack.ok("status", "--json"))
    api = next(s for s in status["services"] if s["name"] == "api")
    assert api["running"] == 1 and api["desired"] == 1


def test_down_leaves_no_process(stack: Stack) -> None:
    pids = stack.tree_pids()
    assert len(pids) >= 5  # supervisord, postgres (+ its children), redis, api, worker
    stack.ok("down")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(psutil.pid_exists(p) for p in pids):
        time.sleep(0.1)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == [], f"processes left behind: {alive}"
    assert stack.cli("status").returncode == 1
    assert (stack.project / ".schedgen" / "data" / "postgres" / "PG_VERSION").exists(), "down must keep data"
