"""The parse sandbox: a real child process under RLIMIT_AS / RLIMIT_CPU, killed past its deadline.

What the in-process caps cannot bound (crafted font tables that keep pdfminer in one call) is bounded
here; a breach costs the child, never the caller, and the next request is served by a fresh child.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from schedgen_ops.parsing import ParseError, parse_pdf, quick_check
from schedgen_ops.parsing.limits import MiB
from schedgen_ops.parsing.sandbox import KILL_GRACE_S, Sandbox, SandboxUnavailable
from tests.parsing import hostile

MEMORY_MB = 256
OPTIONS = {"max_bytes": 10 * MiB, "max_pages": 100}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    box = Sandbox(memory_mb=MEMORY_MB)
    box.start()
    yield box
    box.close()


def test_results_equal_the_in_process_parse(sandbox: Sandbox, up_pdf: Callable[[str], Path]) -> None:
    status = sandbox.status()
    assert status["modules"] == ["pdfminer.pdfinterp", "schedgen_ops.parsing.api"]  # loaded before a job
    for name in ("UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf"):
        data = up_pdf(name).read_bytes()
        run = sandbox.parse(data, filename=name, timeout_s=10, **OPTIONS)
        assert run.error is None and run.value == parse_pdf(data, filename=name)
        assert run.peak_rss_bytes is not None and 0 < run.peak_rss_bytes < MEMORY_MB * MiB
        assert sandbox.quick_check(data, timeout_s=5, **OPTIONS).result() == quick_check(data)
    run = sandbox.parse(up_pdf("not-a-timetable.pdf").read_bytes(), filename=None, timeout_s=10, **OPTIONS)
    with pytest.raises(ParseError) as info:
        run.result()
    assert info.value.code == "not_a_timetable"


def test_a_call_that_never_returns_ends_at_the_deadline(sandbox: Sandbox) -> None:
    """The font-table CPU bomb: the child's alarm ends it at 2 s + 0.5 s; the child lives on."""
    pid = sandbox.pid
    run = sandbox.parse(hostile.font_cpu_bomb(), filename=None, timeout_s=2.0, **OPTIONS)
    assert run.error is not None and run.error.code == "parse_timeout"
    assert 2.0 <= run.wall_s < 2.0 + 2.0
    assert sandbox.pid == pid


def test_the_memory_ceiling_fails_that_parse_only(sandbox: Sandbox, up_pdf: Callable[[str], Path]) -> None:
    """The font-table memory bomb (gigabytes in one pdfminer call) stops at the child's 256 MB."""
    pid = sandbox.pid
    run = sandbox.parse(hostile.font_memory_bomb(), filename=None, timeout_s=20, **OPTIONS)
    assert run.error is not None and run.error.code == "parse_limit_exceeded", run.error
    assert "memory" in run.error.message
    assert run.peak_rss_bytes is not None and run.peak_rss_bytes <= MEMORY_MB * MiB
    assert run.wall_s < 20  # the ceiling, not the deadline, ended it
    # The bloated child was replaced; the next request is served as usual.
    assert sandbox.parse(up_pdf("UP_EXAM_SS.pdf").read_bytes(), filename=None, timeout_s=10, **OPTIONS).value
    assert sandbox.pid != pid


def test_a_child_killed_mid_parse_fails_that_parse_only(
    sandbox: Sandbox, up_pdf: Callable[[str], Path]
) -> None:
    sandbox.start()
    pid = sandbox.pid
    assert pid is not None
    threading.Timer(0.5, os.kill, (pid, signal.SIGKILL)).start()  # the OOM killer, say
    run = sandbox.parse(hostile.font_cpu_bomb(), filename=None, timeout_s=10, **OPTIONS)
    assert run.error is not None and run.error.code == "parse_limit_exceeded"
    assert run.wall_s < 5
    assert sandbox.parse(up_pdf("UP_EXAM_SS.pdf").read_bytes(), filename=None, timeout_s=10, **OPTIONS).value


def test_a_child_is_replaced_after_its_request_quota(up_pdf: Callable[[str], Path]) -> None:
    box = Sandbox(memory_mb=MEMORY_MB, preload="check", max_requests=2)
    data = up_pdf("UP_EXAM_SS.pdf").read_bytes()
    try:
        pids = []
        for _ in range(3):
            assert box.quick_check(data, timeout_s=5, **OPTIONS).result() == 1
            pids.append(box.pid)
        # The first child stopped after its 2nd request; a fresh one answered the 3rd.
        assert pids[0] is not None and pids[1] is None and pids[2] not in (None, pids[0])
    finally:
        box.close()


HANGS = """
import json, os, signal, struct, sys, time
signal.signal(signal.SIGALRM, signal.SIG_IGN)  # deaf to everything but SIGKILL
hello = json.dumps({"ready": True}).encode()
os.write(1, struct.pack(">I", len(hello)) + hello)
if not sys.stdin.buffer.read(4):
    sys.exit(0)  # closed: the parent is done with us
time.sleep(600)
"""


class _Stub(Sandbox):
    child_module = "sandbox_stub"


def test_a_child_that_does_not_answer_is_killed_past_the_deadline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sandbox_stub.py").write_text(HANGS)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    box = _Stub(memory_mb=MEMORY_MB, preload="check")
    try:
        box.start()
        pid = box.pid
        assert pid is not None
        run = box.quick_check(b"%PDF-1.4", timeout_s=0.5, **OPTIONS)
        assert run.error is not None and run.error.code == "parse_timeout"
        assert 0.5 + KILL_GRACE_S <= run.wall_s < 0.5 + KILL_GRACE_S + 1.5
        deadline = time.monotonic() + 5
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{pid}").exists(), "the deaf child is still running"
        assert box.pid not in (None, pid)  # a fresh one was started for the next request
    finally:
        box.close()


def test_a_child_that_cannot_start_is_a_server_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the file's fault: callers retry (`SandboxUnavailable`), they do not fail the job."""
    (tmp_path / "sandbox_stub.py").write_text("import sys\nsys.exit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    box = _Stub(memory_mb=MEMORY_MB)
    try:
        with pytest.raises(SandboxUnavailable, match="exit code 3"):
            box.quick_check(b"%PDF-1.4", timeout_s=1, **OPTIONS)
    finally:
        box.close()


def test_the_child_holds_none_of_the_service_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """It parses hostile bytes: the database/Redis/S3 credentials and the ops token stay in the parent."""
    monkeypatch.setenv("SCHEDGEN_DATABASE_URL", "postgresql://app:secret@db/x")
    monkeypatch.setenv("SCHEDGEN_OPS_TOKEN", "ops-token-value")
    box = Sandbox(memory_mb=MEMORY_MB)
    box.start()
    try:
        environ = Path(f"/proc/{box.pid}/environ").read_bytes().split(b"\0")
    finally:
        box.close()
    names = {item.split(b"=", 1)[0].decode() for item in environ if item}
    assert "PYTHONPATH" in names
    assert not any(name.startswith("SCHEDGEN_") for name in names), names


def test_a_pool_whose_children_stay_busy_refuses_instead_of_queueing_forever(
    up_pdf: Callable[[str], Path],
) -> None:
    from schedgen_ops.parsing.sandbox import SandboxPool

    pool = SandboxPool(size=1, memory_mb=MEMORY_MB, preload="check", wait_s=0.5)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with pool.sandbox():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        started = time.monotonic()
        with pytest.raises(SandboxUnavailable, match="stayed busy"):
            pool.quick_check(up_pdf("UP_EXAM_SS.pdf").read_bytes(), timeout_s=5, **OPTIONS)
        assert time.monotonic() - started < 3
    finally:
        release.set()
        holder.join()
    assert pool.quick_check(up_pdf("UP_EXAM_SS.pdf").read_bytes(), timeout_s=5, **OPTIONS).result() >= 1
    with pool.sandbox() as box:
        box.close()
