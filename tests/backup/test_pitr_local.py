"""Point-in-time recovery on the real local stack: supervisord, Postgres (as nobody when root), Redis, api,
an RQ worker, and pgBackRest archiving WAL asynchronously into an encrypted local repository.

One stack for the module; the tests run in file order. ``backup.pitr.archive_timeout_s`` is set to 2 s
through the environment (config override) so the disk-loss test waits archive_timeout + 5 s = 7 s
instead of 65 s; the restore-to-T test forces its segment with pg_switch_wal().
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

from schedgen_ops.runtime.dataservices import free_port, free_port_block, service_tempdir

pytestmark = [
    pytest.mark.timeout(420),
    pytest.mark.skipif(shutil.which("pgbackrest") is None, reason="pgbackrest is not installed"),
]
ARCHIVE_TIMEOUT_S = 2
MakeJobs = Callable[..., list[str]]  # tests/backup/conftest.py create_jobs


class Stack:
    def __init__(self, project: Path, env: dict[str, str]):
        self.project = project
        self.env = env

    def cli(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "schedgen_ops.cli.main", "-P", str(self.project), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
            check=False,
        )

    def ok(self, *args: str, timeout: float = 240) -> str:
        result = self.cli(*args, timeout=timeout)
        assert result.returncode == 0, f"schedgen {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def secrets(self) -> dict[str, str]:
        from schedgen_ops.runtime.local import LocalRuntime

        return LocalRuntime(self.project).secrets()

    @property
    def app_url(self) -> str:
        return self.secrets()["SCHEDGEN_DATABASE_URL"]

    def admin(self) -> psycopg.Connection:
        text = (self.project / ".schedgen" / "secrets.env").read_text()
        password = next(
            line.split("=", 1)[1]
            for line in text.splitlines()
            if line.startswith("POSTGRES_SUPERUSER_PASSWORD=")
        )
        port = int(self.env["SCHEDGEN_PORTS__POSTGRES"])
        return psycopg.connect(
            host="127.0.0.1",
            port=port,
            user="postgres",
            password=password,
            dbname="postgres",
            autocommit=True,
        )

    def rpc(self):  # type: ignore[no-untyped-def]
        from schedgen_ops.runtime.local import LocalRuntime

        return LocalRuntime(self.project).rpc()

    def tree_pids(self) -> list[int]:
        try:
            pid = int((self.project / ".schedgen" / "run" / "supervisord.pid").read_text())
        except (OSError, ValueError):
            return []
        if not psutil.pid_exists(pid):
            return []
        return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]


@contextlib.contextmanager
def running_stack(prefix: str, extra_env: dict[str, str]) -> Iterator[Stack]:
    """A local stack with PITR on (archive_timeout 2 s) in a fresh project, `up` run; everything it
    started is stopped and removed afterwards. ``extra_env`` adds settings (test_pitr_s3.py's repository)."""
    root = service_tempdir(prefix)
    project = root / "project"
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    env.update(
        {
            "SCHEDGEN_PORTS__API": str(free_port_block(2)),
            "SCHEDGEN_PORTS__POSTGRES": str(free_port()),
            "SCHEDGEN_PORTS__REDIS": str(free_port()),
            "SCHEDGEN_PORTS__PROMETHEUS": str(free_port()),
            "SCHEDGEN_WORKER__REPLICAS": "1",
            "SCHEDGEN_WORKER__MIN_REPLICAS": "1",
            "SCHEDGEN_WORKER__METRICS_PORT": str(free_port_block(6)),  # 3 slots, blue and green
            "SCHEDGEN_FRONTDOOR__UPSTREAM_PORT": str(free_port_block(4)),  # 2 api slots, blue and green
            "SCHEDGEN_SERVICE__WORKER_PROCESSES": "1",
            "SCHEDGEN_BACKUP__PITR__ENABLED": "true",
            "SCHEDGEN_BACKUP__PITR__ARCHIVE_TIMEOUT_S": str(ARCHIVE_TIMEOUT_S),
            **extra_env,
        }
    )
    s = Stack(project, env)
    try:
        s.ok("up", timeout=300)
        yield s
    finally:
        pids = s.tree_pids()
        s.cli("down", timeout=120)
        for pid in pids:
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack("schedgen-pitr-", {}) as s:
        yield s


def _job_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM jobs").fetchall()}


def _server_now(stack: Stack) -> dt.datetime:
    with stack.admin() as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    return row[0]


def _archive_current_segment(stack: Stack, timeout_s: float = 60) -> None:
    """pg_switch_wal(), then wait until the segment it closed is archived."""
    with stack.admin() as conn:
        row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        assert row is not None
        segment = row[0]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            if done and done[0] and done[0][8:] >= segment[8:]:
                return
            time.sleep(0.2)
    raise AssertionError(f"segment {segment} was not archived within {timeout_s}s")


def test_up_enables_pitr_and_takes_the_first_full_backup(stack: Stack) -> None:
    """`up` (in the fixture) created the stanza and took the first full backup; pitr-enable repeats
    only the checks."""
    out = json.loads(stack.ok("backup", "pitr-enable", "--json"))
    assert out["first_backup"] is None  # the repository already holds `up`'s full backup
    conf = Path(out["conf"])
    assert conf.stat().st_mode & 0o777 == 0o600  # it holds the cipher pass
    with stack.admin() as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('archive_mode', 'archive_timeout')"
            ).fetchall()
        )
    assert settings == {"archive_mode": "on", "archive_timeout": str(ARCHIVE_TIMEOUT_S)}
    listing = json.loads(stack.ok("backup", "list", "--json"))
    window = listing["pitr"]
    assert window["earliest"] and window["latest"] >= window["earliest"]
    assert [b["type"] for b in window["backups"]] == ["full"]
    # The repository is encrypted: no WAL segment in it is a readable Postgres WAL page.
    repo = Path(out["conf"]).parent / "repo"
    segments = [p for p in repo.rglob("*") if p.is_file() and p.name.startswith("0000000")]
    assert segments and all(b"\xd1\x10" not in p.read_bytes()[:2] for p in segments)


def test_restore_to_time_gives_exactly_the_jobs_before_it(stack: Stack, make_jobs: MakeJobs) -> None:
    before = set(make_jobs(stack.app_url, 6, completed=4))
    time.sleep(0.2)
    target = _server_now(stack)
    time.sleep(0.2)
    after = set(make_jobs(stack.app_url, 5, completed=2))
    _archive_current_segment(stack)
    assert before | after <= _job_ids(stack.app_url)
    existing = _job_ids(stack.app_url) - before - after

    running = {f"{p['group']}:{p['name']}": p["statename"] for p in stack.rpc().getAllProcessInfo()}
    writers = sorted(
        name
        for name, state in running.items()
        if re.sub(r"-(blue|green)$", "", name.split(":")[0]) in ("api", "pdf-worker") and state == "RUNNING"
    )
    assert writers, running
    out = stack.ok("restore", "--to", target.isoformat(), "--yes", "--no-health", "--json")
    report = json.loads(out)
    assert _job_ids(stack.app_url) == before | existing
    assert report["safety_backup_id"]  # the pg_dump set of the state before the restore
    assert report["previous_database"].endswith(tuple("0123456789z"))
    assert sorted(report["stopped"]) == writers == sorted(report["restarted"])
    assert report["archive_check"] == "ok"
    assert [c["ok"] for c in report["checks"]] == [True]


def test_disk_loss_then_restore_latest_keeps_work_older_than_archive_timeout(
    stack: Stack, make_jobs: MakeJobs
) -> None:
    kept = _job_ids(stack.app_url)
    committed = set(make_jobs(stack.app_url, 5, completed=3))
    time.sleep(ARCHIVE_TIMEOUT_S + 5)  # no pg_switch_wal(): archive_timeout alone must close the segment
    rpc = stack.rpc()
    rpc.stopProcess("postgres:postgres", True)
    data = stack.project / ".schedgen" / "data" / "postgres"
    shutil.rmtree(data)  # the disk is gone

    report = json.loads(stack.ok("restore", "--to", "latest", "--yes", "--no-safety-backup", "--json"))
    assert _job_ids(stack.app_url) == kept | committed
    problems = report["health"]["problems"]
    assert not [p for p in problems if p.startswith("postgres")], problems
    assert rpc.getProcessInfo("postgres:postgres")["statename"] == "RUNNING"


def test_restore_to_a_time_before_the_window_is_refused_and_changes_nothing(stack: Stack) -> None:
    jobs = _job_ids(stack.app_url)
    result = stack.cli("restore", "--to", "2001-01-01T00:00:00Z", "--yes", "--no-health")
    assert result.returncode == 1
    assert "before the recoverable window" in result.stderr
    naive = stack.cli("restore", "--to", "2026-01-01T00:00:00", "--yes")
    assert naive.returncode == 2 and "no time zone" in naive.stderr
    assert _job_ids(stack.app_url) == jobs


def test_scheduled_backup_and_deep_verify_drill(stack: Stack) -> None:
    created = json.loads(stack.ok("backup", "--json"))
    assert created["pitr"]["backup"]["type"] in ("full", "diff")
    verified = json.loads(stack.ok("backup", "verify", "--deep", "--json"))
    drill = verified["pitr"]["drill"]
    assert drill["ok"], drill
    jobs = [n for table, n in drill["recovered_rows"].items() if table.endswith(".jobs")]
    assert jobs == [len(_job_ids(stack.app_url))]


def test_archiving_broken_makes_health_critical(stack: Stack, make_jobs: MakeJobs) -> None:
    repo = stack.project / ".schedgen" / "pgbackrest" / "repo"
    healthy = json.loads(stack.cli("health", "--only", "backup", "--json").stdout)
    assert {c["name"]: c["status"] for c in healthy["checks"]}["wal_archive_failures"] == "ok"
    for path in [repo, *repo.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)  # the repository's disk turned read-only
    try:
        make_jobs(stack.app_url, 2)
        with stack.admin() as conn:
            conn.execute("SELECT pg_switch_wal()")
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                row = conn.execute("SELECT failed_count FROM pg_stat_archiver").fetchone()
                if row and row[0] > 0:
                    break
                time.sleep(0.3)
        result = stack.cli("health", "--only", "backup", "--json")
        report = json.loads(result.stdout)
        checks = {c["name"]: c for c in report["checks"]}
        assert checks["wal_archive_failures"]["status"] == "critical", checks
        assert "archive_command failing" in checks["wal_archive_failures"]["measured"]
        assert result.returncode == 2
    finally:
        for path in [repo, *repo.rglob("*")]:
            if path.is_dir():
                path.chmod(0o750)
