"""Deploy lock, audit log and command runner: real files, real processes, no mocks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.audit import AuditLog
from schedgen_ops.runtime.lock import DeployLock, read_holder
from schedgen_ops.runtime.runner import Runner

HOLD_LOCK = """
import sys, time
from pathlib import Path
from schedgen_ops.runtime.lock import DeployLock
with DeployLock(Path(sys.argv[1]), "deploy", release="r-other"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _holder_process(state: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(state), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_lock_refuses_naming_the_holder(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path, 30)
    try:
        with pytest.raises(SchedgenError) as err, DeployLock(tmp_path, "scale"):
            pass
        message = err.value.one_line()
        assert err.value.code == "locked"
        assert f"pid {proc.pid}" in message and socket.gethostname() in message and "r-other" in message
        assert "deploy by" in message and "--lock-wait" in message
    finally:
        proc.kill()
        proc.wait()


def test_lock_wait_takes_it_when_the_holder_finishes(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path, 1.0)
    started = time.monotonic()
    with DeployLock(tmp_path, "deploy", wait_s=20, poll_s=0.1) as lock:
        assert lock.held
        assert read_holder(tmp_path / "deploy.lock").pid == os.getpid()  # type: ignore[union-attr]
    assert 0.5 < time.monotonic() - started < 15
    assert not (tmp_path / "deploy.lock").exists()
    proc.wait()


def test_lock_wait_gives_up_after_the_wait(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path, 30)
    try:
        started = time.monotonic()
        with (
            pytest.raises(SchedgenError, match=r"after waiting 0\.6s"),
            DeployLock(tmp_path, "deploy", wait_s=0.6, poll_s=0.1),
        ):
            pass
        assert time.monotonic() - started >= 0.6
    finally:
        proc.kill()
        proc.wait()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    proc = _holder_process(tmp_path, 30)
    proc.kill()  # dies holding it: the file stays behind
    proc.wait()
    assert read_holder(tmp_path / "deploy.lock").pid == proc.pid  # type: ignore[union-attr]
    with DeployLock(tmp_path, "deploy") as lock:
        assert lock.took_over is not None and lock.took_over.pid == proc.pid


def test_lock_from_another_host_is_never_stale(tmp_path: Path) -> None:
    (tmp_path / "deploy.lock").write_text(
        json.dumps({"who": "ann", "host": "elsewhere", "pid": 1, "when": "t", "action": "deploy"})
    )
    with pytest.raises(SchedgenError, match="ann@elsewhere"), DeployLock(tmp_path, "deploy"):
        pass


def test_only_one_of_many_racing_processes_gets_the_lock(tmp_path: Path) -> None:
    # Six processes race for the lock at once (threads would share a pid): exactly one wins.
    script = (
        "import sys\nfrom pathlib import Path\nfrom schedgen_ops.runtime.lock import DeployLock\n"
        "from schedgen_ops.errors import SchedgenError\nimport time\n"
        "try:\n    l = DeployLock(Path(sys.argv[1]), 'deploy'); l.acquire()\n"
        "    print('won', flush=True); time.sleep(2)\n"
        "except SchedgenError:\n    print('refused', flush=True)\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=30)[0].strip() for p in procs]
    assert sorted(outputs) == ["refused"] * 5 + ["won"]


def test_audit_appends_complete_entries_and_tails(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    threads = [
        threading.Thread(
            target=lambda i=i: log.append("deploy", result="ok", release=f"r{i}", duration_s=i / 3)
        )
        for i in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = log.tail()
    assert len(entries) == 20
    assert set(entries[0]) >= {"time", "user", "host", "action", "release", "result", "duration_s"}
    assert sorted(e["release"] for e in entries) == sorted(f"r{i}" for i in range(20))
    assert [e["release"] for e in log.tail(3)] == [e["release"] for e in entries[-3:]]
    assert AuditLog(tmp_path / "none.jsonl").tail(5) == []


def test_runner_dry_run_echoes_and_audits_without_running(tmp_path: Path) -> None:
    echoed: list[str] = []
    log = AuditLog(tmp_path / "audit.jsonl")
    marker = tmp_path / "made"
    runner = Runner(dry_run=True, echo=echoed.append, audit=log)
    result = runner.run(["touch", str(marker)])
    assert result.dry_run and result.ok and not marker.exists()
    assert echoed == [f"(dry run) $ touch {marker}"]
    assert log.tail()[-1]["result"] == "dry-run" and log.tail()[-1]["argv"] == ["touch", str(marker)]
    # read-only commands still run under --dry-run (status needs real answers)
    assert runner.run(["echo", "hi"], read_only=True).stdout == "hi\n"


def test_runner_runs_records_and_fails_with_stderr(tmp_path: Path) -> None:
    echoed: list[str] = []
    log = AuditLog(tmp_path / "audit.jsonl")
    runner = Runner(echo=echoed.append, audit=log)
    assert runner.run(["sh", "-c", "echo out"]).stdout == "out\n"
    with pytest.raises(SchedgenError, match="exit 3: boom"):
        runner.run(["sh", "-c", "echo boom >&2; exit 3"])
    assert runner.run(["sh", "-c", "exit 4"], check=False).returncode == 4
    assert [e["result"] for e in log.tail()] == ["ok", "exit 3", "exit 4"]
    assert echoed[0] == "$ sh -c 'echo out'"
    with pytest.raises(SchedgenError, match="not installed"):
        runner.run(["no-such-binary-xyz"])


def test_runner_stream_yields_lines() -> None:
    assert list(Runner().stream(["sh", "-c", "echo a; echo b"])) == ["a", "b"]


def test_every_operation_is_locked_timed_and_audited_even_when_it_fails_unexpectedly(tmp_path: Path) -> None:
    """operation(): the verb records its outcome once; an exception it did not record still leaves a
    "failed" entry with the error and the release, and the lock is free afterwards."""
    from schedgen_ops.runtime.operations import Ops, operation

    ops = Ops(tmp_path)
    with operation(ops, "scale", "r-1") as op:
        assert (ops.state / "deploy.lock").exists()
        op.record("ok", counts={"api": 2})
    with pytest.raises(RuntimeError), operation(ops, "down", "r-1"):
        raise RuntimeError("the engine vanished")
    with pytest.raises(SchedgenError), operation(ops, "deploy") as op:
        op.set_release("r-2")
        raise SchedgenError("gate: api not ready", code="deploy_failed")
    with pytest.raises(SchedgenError), operation(ops, "up") as op:
        op.record("failed", error="recorded by the verb")
        raise SchedgenError("up failed", code="up_failed")
    entries = AuditLog.for_project(tmp_path).tail()
    summary = [(e["action"], e["result"], e["release"], e.get("error")) for e in entries]
    assert summary == [
        ("scale", "ok", "r-1", None),
        ("down", "failed", "r-1", "RuntimeError: the engine vanished"),
        ("deploy", "failed", "r-2", "gate: api not ready"),
        ("up", "failed", None, "recorded by the verb"),  # recorded once, not twice
    ]
    assert all(isinstance(e["duration_s"], float) for e in entries)
    assert not (ops.state / "deploy.lock").exists()
