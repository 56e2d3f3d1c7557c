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
from schedgen_ops.ops.backup.restore import RestoreFailed, RestoreRequest, restore_backup
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
    ledger_url, supervised_workers, tmp_path, make_jobs, capture_rows, signing_key, postgres_server
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
    manifest = create_backup(BackupRequest(target=target, directory=backups, key=signing_key))
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
            key=signing_key,
            writers=ObservedWriters(sock),
            safety_backup=False,
        )
    )

    assert report.stopped == report.restarted == sorted(f"pdf-worker:{name}" for name in WORKERS)
    assert observed["states"] == {f"pdf-worker:{name}": "STOPPED" for name in WORKERS}
    assert observed["sessions"] == 0  # no worker session was left when the swap started
    events = [e["event"] for e in report.timeline]
    # Swap: restored and checked while the workers ran; only the rename happens with them stopped.
    assert events.index("checks") < events.index("stop writers") < events.index("swap")
    assert events.index("swap") < events.index("start writers")
    after = _wait_running(sock)
    assert all(after[name][1] != before[name][1] for name in before)  # new processes
    assert capture_rows(ledger_url) == original
    postgres_server.drop_database(str(report.previous_database))


def _breaks_midway(backups: Path, backup_id: str, key) -> None:
    """Make the dump fail after its tables and rows are in: one index definition is no longer SQL.

    The archive's table of contents and every row still read back, and the manifest is re-signed, so
    the set passes (standard) verification: only restoring it fails, half-way.
    """
    from schedgen_ops.ops.backup.manifest import read_manifest, write_manifest
    from schedgen_ops.ops.backup.signing import sign
    from schedgen_ops.ops.backup.streaming import file_digest

    path = backups / backup_id
    dump = path / "postgres.dump"
    data = dump.read_bytes()
    assert data.count(b"CREATE INDEX ") >= 1
    dump.write_bytes(data.replace(b"CREATE INDEX ", b"CREATE INDEZ ", 1))
    manifest = read_manifest(path)
    entry = manifest.file("postgres")
    assert entry is not None
    entry.sha256 = file_digest(dump).sha256
    sign(manifest, key)
    write_manifest(path, manifest)


def test_a_restore_failing_midway_never_puts_the_writers_on_a_half_restored_database(
    ledger_url, postgres_server, supervised_workers, tmp_path, make_jobs, capture_rows, signing_key
):
    sock = supervised_workers
    make_jobs(ledger_url, 12, completed=4)
    before = _wait_running(sock)
    target = LocalTarget(ledger_url)
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=target, directory=backups, key=signing_key))
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute("DELETE FROM results")
    live = capture_rows(ledger_url)
    _breaks_midway(backups, manifest.id, signing_key)

    def restore(mode: str) -> RestoreFailed:
        request = RestoreRequest(
            target=target,
            directory=backups,
            backup_id=manifest.id,
            key=signing_key,
            writers=SupervisorWriters(sock),
            mode=mode,  # type: ignore[arg-type]
            safety_backup=False,
        )
        with pytest.raises(RestoreFailed, match='syntax error at or near "INDEZ"') as raised:
            restore_backup(request)
        return raised.value

    # Swap (the default for a role that may create databases): the new database fails, the live one was
    # never touched and the writers never stopped.
    failed = restore("auto")
    assert failed.report.mode == "swap" and failed.report.stopped == []
    assert (
        "The live database" in failed.message
        and "was not touched and the writers were not stopped" in failed.message
    )
    assert capture_rows(ledger_url) == live
    assert _processes(sock) == before  # the same processes, still running
    incoming = f"{target.conn.dbname}_restore_{manifest.id.lower()}"
    with psycopg.connect(postgres_server.url) as conn:  # the half-restored new database was dropped
        leftover = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (incoming,))
        assert leftover.fetchone() == (0,)

    # In place: stopped first, the one transaction rolled back, and the writers left stopped (said so).
    failed = restore("clean")
    names = sorted(f"pdf-worker:{name}" for name in WORKERS)
    assert failed.report.stopped == failed.report.left_stopped == names and failed.report.restarted == []
    assert f"The writers were left stopped: {', '.join(names)}" in failed.message
    assert "rolled back" in failed.message
    assert {state for state, _ in _processes(sock).values()} == {"STOPPED"}
    assert capture_rows(ledger_url) == live  # the original database is intact
    assert "start writers" not in [e["event"] for e in failed.report.timeline]
