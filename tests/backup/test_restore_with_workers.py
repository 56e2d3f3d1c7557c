"""Restore while real RQ workers run under supervisord: they are stopped first and restarted after.

The supervisord here is started by the test with the local runtime's group names (``pdf-worker``)
and real worker processes (`python -m schedgen_ops.service.worker`), driven over the same XML-RPC
socket the local runtime uses.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.restore import RestoreRequest, restore_backup
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.ops.backup.writers import SupervisorWriters
from schedgen_ops.runtime.dataservices import service_tempdir

WORKERS = ("pdf-worker-1", "pdf-worker-2")


def _conf(base: Path, env: dict[str, str]) -> str:
    environment = ",".join(f'{k}="{v}"' for k, v in sorted(env.items()))
    programs = "".join(
        f"""
[program:{name}]
command={sys.executable} -m schedgen_ops.service.worker
environment={environment},SCHEDGEN_METRICS_DIR="{base}/metrics-{name}"
autostart=true
startsecs=1
stopsignal=TERM
stopwaitsecs=30
redirect_stderr=true
stdout_logfile={base}/{name}.log
"""
        for name in WORKERS
    )
    return f"""[unix_http_server]
file={base}/supervisor.sock
chmod=0700

[supervisord]
logfile={base}/supervisord.log
pidfile={base}/supervisord.pid
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
{programs}
[group:pdf-worker]
programs={",".join(WORKERS)}
"""


def _rpc(sock: Path):
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, serverurl=f"unix://{sock}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor


def _processes(sock: Path) -> dict[str, tuple[str, int]]:
    return {f"{p['group']}:{p['name']}": (p["statename"], p["pid"]) for p in _rpc(sock).getAllProcessInfo()}


def _wait_running(sock: Path, timeout: float = 60) -> dict[str, tuple[str, int]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            procs = _processes(sock)
            if len(procs) == len(WORKERS) and all(state == "RUNNING" for state, _ in procs.values()):
                return procs
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"workers not running: {_processes(sock)}")


def _other_sessions(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def supervised_workers(ledger_url, redis_url) -> Iterator[Path]:
    base = service_tempdir("schedgen-test-sv-")
    (base / "uploads").mkdir()
    env = {
        "SCHEDGEN_DATABASE_URL": ledger_url,
        "SCHEDGEN_REDIS_URL": redis_url,
        "SCHEDGEN_STORAGE_URL": f"file://{base}/uploads",
        "SCHEDGEN_DB_POOL_MIN": "2",
    }
    for name in WORKERS:
        (base / f"metrics-{name}").mkdir()
    conf = base / "supervisord.conf"
    conf.write_text(_conf(base, env))
    proc = subprocess.Popen(
        ["supervisord", "-c", str(conf)], env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    )
    try:
        yield base / "supervisor.sock"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_restore_stops_running_workers_first_and_restarts_them(
    ledger_url, supervised_workers, tmp_path, make_jobs, capture_rows
):
    sock = supervised_workers
    make_jobs(ledger_url, 20, completed=5)
    before = _wait_running(sock)
    deadline = time.monotonic() + 60
    while _other_sessions(ledger_url) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _other_sessions(ledger_url) > 0  # the workers hold database sessions (their pools)
    original = capture_rows(ledger_url)
    target = LocalTarget(ledger_url)
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=target, directory=backups))
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute("DELETE FROM jobs")

    observed: dict[str, object] = {}

    class ObservedWriters(SupervisorWriters):
        """The real supervisord control, plus a look at the world the moment it reports "stopped"."""

        def stop(self) -> list[str]:
            stopped = super().stop()
            observed["states"] = {name: state for name, (state, _) in _processes(sock).items()}
            observed["sessions"] = _other_sessions(ledger_url)
            return stopped

    report = restore_backup(
        RestoreRequest(
            target=target,
            directory=backups,
            backup_id=manifest.id,
            writers=ObservedWriters(sock),
            safety_backup=False,
        )
    )

    assert report.stopped == report.restarted == sorted(f"pdf-worker:{name}" for name in WORKERS)
    assert observed["states"] == {f"pdf-worker:{name}": "STOPPED" for name in WORKERS}
    assert observed["sessions"] == 0  # no worker session was left when pg_restore started
    events = [e["event"] for e in report.timeline]
    assert events.index("stop writers") < events.index("restore postgres") < events.index("start writers")
    after = _wait_running(sock)
    assert all(after[name][1] != before[name][1] for name in before)  # new processes
    assert capture_rows(ledger_url) == original
