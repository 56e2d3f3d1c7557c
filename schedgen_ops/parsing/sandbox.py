"""Run parses in a reusable child process with a hard memory and CPU ceiling, killed past its deadline.

The in-process caps (`parsing.limits`) stop the known bombs early and with a precise message; this is
the guarantee behind them. A `Sandbox` owns one child (`parsing.sandbox_child`) that runs under
RLIMIT_AS = ``memory_mb`` and a per-request RLIMIT_CPU, and answers one request at a time. The parent
waits at most the request's timeout + `KILL_GRACE_S`, then kills it. Whatever the PDF does, it costs the
child, never the caller: a breach becomes that request's `parse_limit_exceeded` or `parse_timeout`, the
child is replaced, and the next request goes on. Results come back as JSON, never pickles, so even a
child subverted by its input cannot run code in the parent.

Errors that are not the file's fault (the child cannot start; a bug in the parser) raise
`SandboxUnavailable` / `SandboxCrash`, which callers treat as transient.
"""

from __future__ import annotations

import atexit
import json
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from schedgen_ops.parsing.errors import ParseError
from schedgen_ops.parsing.limits import Limits, limit_exceeded

KILL_GRACE_S = 1.5  # after the request's timeout (the child's own deadline + alarm fire before it)
START_TIMEOUT_S = 60.0
MAX_REQUESTS = 1000  # a child is replaced after this many requests (leak guard)
_LEN = 4
T = TypeVar("T")
Preload = Literal["parse", "check"]


class SandboxUnavailable(RuntimeError):
    """The sandbox child could not be started or reached (a server problem, not the file's)."""


class SandboxCrash(RuntimeError):
    """The parser raised an unexpected error in the child (a bug, not the file's fault)."""


@dataclass(frozen=True, slots=True)
class Run(Generic[T]):
    """One request's outcome: its value or its `ParseError`, and what it cost the child."""

    value: T | None
    error: ParseError | None
    wall_s: float
    peak_rss_bytes: int | None  # the child's peak resident memory during this request (kernel VmHWM)

    def result(self) -> T:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


class _Gone(Exception):
    """The child closed its end (it exited or was killed)."""


class _Late(Exception):
    """The child did not answer before the deadline."""


def _package_root() -> str:
    return str(Path(__file__).resolve().parents[2])


class Sandbox:
    """One reusable child process; `parse` / `quick_check` are serialized by a lock."""

    child_module = "schedgen_ops.parsing.sandbox_child"  # what runs in the child (`python -m`)

    def __init__(
        self, *, memory_mb: int, preload: Preload = "parse", max_requests: int = MAX_REQUESTS
    ) -> None:
        self.memory_mb = memory_mb
        self.preload = preload
        self.max_requests = max_requests
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ready = False
        self._served = 0
        _LIVE.add(self)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(self) -> None:
        """Start the child now and wait until it has imported the parser (the worker's warm-up)."""
        with self._lock:
            self._ensure_ready()

    def status(self) -> dict[str, Any]:
        """The child's own report: pid, loaded parser modules, address-space size."""
        header, _ = self._call({"op": "status", "timeout_s": 10.0}, b"", 10.0)
        return header

    def parse(
        self,
        data: bytes,
        *,
        filename: str | None,
        max_bytes: int,
        max_pages: int,
        timeout_s: float,
        limits: Limits | None = None,
    ) -> Run[Any]:
        """`parse_pdf` in the child (``limits``: `PARSE_LIMITS`); ``value`` is the `Timetable`."""
        from schedgen_ops.parsing.model import Timetable

        header: dict[str, Any] = {"op": "parse", "filename": filename}
        header |= {"max_bytes": max_bytes, "max_pages": max_pages}
        header["limits"] = asdict(limits) if limits is not None else None
        return self._run(header, data, timeout_s, lambda head, body: Timetable.model_validate_json(body))

    def quick_check(
        self, data: bytes, *, max_bytes: int, max_pages: int, timeout_s: float, limits: Limits | None = None
    ) -> Run[int]:
        """`quick_check` in the child (``limits``: `CHECK_LIMITS`); ``value`` is the page count."""
        header: dict[str, Any] = {"op": "check", "max_bytes": max_bytes, "max_pages": max_pages}
        header["limits"] = asdict(limits) if limits is not None else None
        return self._run(header, data, timeout_s, lambda head, body: int(head["pages"]))

    def close(self) -> None:
        with self._lock:
            self._stop()
        _LIVE.discard(self)

    # -- internals -------------------------------------------------------------------------------

    def _run(self, header: dict[str, Any], data: bytes, timeout_s: float, value: Any) -> Run[Any]:
        started = time.monotonic()
        try:
            head, body = self._call({**header, "timeout_s": timeout_s}, data, timeout_s + KILL_GRACE_S)
        except _Breach as breach:
            return Run(None, breach.error, time.monotonic() - started, breach.peak)
        peak = head.get("peak_rss_kb")
        peak_bytes = int(peak) * 1024 if peak is not None else None
        wall = time.monotonic() - started
        if "crash" in head:
            raise SandboxCrash(f"the parser failed unexpectedly: {head['crash']}")
        if not head.get("ok"):
            return Run(None, ParseError(str(head["code"]), str(head["message"])), wall, peak_bytes)
        return Run(value(head, body), None, wall, peak_bytes)

    def _call(self, header: dict[str, Any], data: bytes, wait_s: float) -> tuple[dict[str, Any], bytes]:
        with self._lock:
            for attempt in (1, 2):
                proc = self._ensure_ready()
                try:
                    self._send(proc, json.dumps(header).encode(), data)
                    break
                except BrokenPipeError:  # it died while idle: not this request's doing
                    self._stop()
                    if attempt == 2:
                        raise SandboxUnavailable("the parser sandbox exits before taking requests") from None
                except BaseException:  # interrupted mid-frame: the child would read the next request as
                    self._stop(kill=True)  # the rest of this one
                    raise
            deadline = time.monotonic() + wait_s
            try:
                head = json.loads(_read_frame(proc, deadline))
                body = _read_frame(proc, deadline)
            except _Late:
                peak = _peak_of(proc.pid)
                self._stop(kill=True)
                self._spawn()  # warm for the next request
                raise _Breach(_timeout(header), peak) from None
            except _Gone:
                try:
                    code = proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    code = proc.wait()
                self._stop()  # closes its pipes
                self._spawn()
                raise _Breach(_death(header, code), None) from None
            except BaseException:  # interrupted (RQ's job timeout, Ctrl-C): the child's state is unknown
                self._stop(kill=True)
                raise
            self._served += 1
            if head.get("exiting"):
                self._stop()  # it exits when a request left it bloated: start a fresh one now
                self._spawn()
            elif self._served >= self.max_requests:
                self._stop()  # a fresh child takes the next request
            return head, body

    def _send(self, proc: subprocess.Popen[bytes], header: bytes, data: bytes) -> None:
        assert proc.stdin is not None
        frames = len(header).to_bytes(_LEN, "big") + header + len(data).to_bytes(_LEN, "big")
        proc.stdin.write(frames)
        proc.stdin.write(data)
        proc.stdin.flush()

    def _ensure_ready(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc, self._ready = None, False
        if self._proc is None:
            self._spawn()
        assert self._proc is not None
        if not self._ready:
            try:
                hello = json.loads(_read_frame(self._proc, time.monotonic() + START_TIMEOUT_S))
            except (_Gone, _Late, ValueError):
                try:
                    code: int | None = self._proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    code = None
                self._stop(kill=True)
                raise SandboxUnavailable(
                    f"the parser sandbox did not start (exit code {code}); its error is in this process's log"
                ) from None
            self._ready = bool(hello.get("ready"))
        return self._proc

    def _spawn(self) -> None:
        # Only what Python needs: the child parses hostile bytes and must not hold the database, Redis or
        # S3 credentials, or the ops token, that this process's environment carries.
        env = {k: v for k, v in os.environ.items() if k in CHILD_ENV or k.startswith("LC_")}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_package_root(), env.get("PYTHONPATH", "")) if p)
        argv = [sys.executable, "-m", self.child_module]
        argv += ["--memory-mb", str(self.memory_mb), "--preload", self.preload]
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise SandboxUnavailable(f"cannot start the parser sandbox: {exc}") from exc
        self._ready = False
        self._served = 0

    def _stop(self, *, kill: bool = False) -> None:
        proc, self._proc, self._ready = self._proc, None, False
        if proc is None:
            return
        if kill:
            proc.kill()
        elif proc.stdin is not None:
            with suppress(OSError):
                proc.stdin.close()  # the child exits at the end of its input
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with suppress(OSError):
                    pipe.close()


class _Breach(Exception):
    def __init__(self, error: ParseError, peak: int | None) -> None:
        self.error = error
        self.peak = peak


def _timeout(header: dict[str, Any]) -> ParseError:
    return ParseError("parse_timeout", f"parsing took longer than the {header['timeout_s']:g} s limit")


def _death(header: dict[str, Any], code: int) -> ParseError:
    if code == -signal.SIGXCPU:
        return _timeout(header)
    return limit_exceeded("the parser process ran out of memory or was stopped")


def _read_exact(proc: subprocess.Popen[bytes], size: int, deadline: float) -> bytes:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    chunks: list[bytes] = []
    while size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Late
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            raise _Late
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise _Gone
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_frame(proc: subprocess.Popen[bytes], deadline: float) -> bytes:
    size = int.from_bytes(_read_exact(proc, _LEN, deadline), "big")
    return _read_exact(proc, size, deadline) if size else b""


def _peak_of(pid: int) -> int | None:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


#: The environment a sandbox child inherits (plus LC_*): nothing secret.
CHILD_ENV = frozenset({"PATH", "PYTHONPATH", "LANG", "HOME", "TMPDIR", "TZ", "PYTHONHASHSEED"})


class SandboxPool:
    """Up to ``size`` sandboxes for concurrent callers (the api's request threads); created on demand.

    A caller waits at most ``wait_s`` for a free one (then SandboxUnavailable): hostile uploads that keep
    every child busy must not pile up request threads that the status and readiness routes need too.
    """

    def __init__(self, *, size: int, memory_mb: int, preload: Preload, wait_s: float = 10.0) -> None:
        self.wait_s = wait_s
        self.size = size
        self.memory_mb = memory_mb
        self.preload = preload
        self._idle: queue.LifoQueue[Sandbox] = queue.LifoQueue()
        self._created = 0
        self._lock = threading.Lock()

    @contextmanager
    def sandbox(self) -> Iterator[Sandbox]:
        box = self._take()
        try:
            yield box
        finally:
            self._idle.put(box)

    def _take(self) -> Sandbox:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if self._created < self.size:
                self._created += 1
                return Sandbox(memory_mb=self.memory_mb, preload=self.preload)
        try:
            return self._idle.get(timeout=self.wait_s)
        except queue.Empty:
            raise SandboxUnavailable(
                f"all {self.size} parser sandboxes stayed busy for {self.wait_s:g} s"
            ) from None

    def parse(self, data: bytes, **options: Any) -> Run[Any]:
        with self.sandbox() as box:
            return box.parse(data, **options)

    def quick_check(self, data: bytes, **options: Any) -> Run[int]:
        with self.sandbox() as box:
            return box.quick_check(data, **options)

    def start(self) -> None:
        """Start one child now (warm-up)."""
        with self.sandbox() as box:
            box.start()


_LIVE: set[Sandbox] = set()
_POOLS: dict[tuple[Preload, int, int], SandboxPool] = {}
_POOLS_LOCK = threading.Lock()


def shared_pool(preload: Preload, *, memory_mb: int, size: int) -> SandboxPool:
    """This process's pool for these settings (created once; children start on first use)."""
    key = (preload, memory_mb, size)
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = _POOLS[key] = SandboxPool(size=size, memory_mb=memory_mb, preload=preload)
        return pool


@atexit.register
def _close_all() -> None:
    for box in list(_LIVE):
        box.close()
