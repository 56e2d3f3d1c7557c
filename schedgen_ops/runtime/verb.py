"""The frame of every verb that changes a stack: its inputs (`Ops`) and its lock, timing and audit.

`operation()` wraps a verb once (as Kamal's cli/base.rb does), so that deploy, up, rollback, scale and
down each only say what they do; `runtime/operations.py` holds those verbs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.layout import ProjectLayout
from schedgen_ops.runtime.audit import AuditLog
from schedgen_ops.runtime.base import NotSwitched
from schedgen_ops.runtime.gate import GateFailure
from schedgen_ops.runtime.lock import DeployLock, read_holder
from schedgen_ops.runtime.releases import ReleaseStore
from schedgen_ops.runtime.runner import Runner


@dataclass
class Ops:
    """Everything an operation needs: the project, how to run commands, where to report."""

    project: Path
    dry_run: bool = False
    echo: Callable[[str], None] = lambda _: None
    lock_wait_s: float = 0.0
    gate_timeout_s: float = 90.0
    runner: Runner = field(init=False)
    audit: AuditLog = field(init=False)
    releases: ReleaseStore = field(init=False)

    def __post_init__(self) -> None:
        self.project = self.project.resolve()
        self.audit = AuditLog.for_project(self.project)
        self.runner = Runner(dry_run=self.dry_run, echo=self.echo, audit=self.audit)
        self.releases = ReleaseStore(self.state)

    @property
    def state(self) -> Path:
        return ProjectLayout.of(self.project).state

    @contextmanager
    def locked(self, action: str, release: str | None = None) -> Iterator[DeployLock]:
        lock = DeployLock(self.state, action, release=release, wait_s=self.lock_wait_s)
        try:
            lock.acquire()
        except SchedgenError:
            self.audit.append(
                action, result="refused: locked", release=release, holder=_holder_dict(self.state)
            )
            raise
        if lock.took_over is not None:
            self.echo(f"took over a stale deploy lock ({lock.took_over.describe()})")
        try:
            yield lock
        finally:
            lock.release_lock()


@dataclass
class Operation:
    """One verb under the deploy lock; `record` writes its audit entry, timed from ``started``."""

    ops: Ops
    action: str
    lock: DeployLock
    started: float
    release: str | None = None
    recorded: bool = False

    def set_release(self, release_id: str) -> None:
        """The release this operation is about, in the lock (for whoever waits) and in its audit entry."""
        self.release = release_id
        self.lock.set_release(release_id)

    def record(self, result: str, **fields: Any) -> None:
        fields.setdefault("release", self.release)
        self.ops.audit.append(
            self.action, result=result, duration_s=time.monotonic() - self.started, **fields
        )
        self.recorded = True


@contextmanager
def operation(
    ops: Ops, action: str, release: str | None = None, *, started: float | None = None
) -> Iterator[Operation]:
    """Lock, timing, audit and failure reporting, once for every verb that changes a stack (deploy, up,
    rollback, scale, down), as Kamal's cli/base.rb wraps its commands. A verb records its own outcome
    (``op.record``); one that ends in an exception without recording gets a "failed" entry with the
    error, so no failure leaves the audit log silent."""
    with ops.locked(action, release) as lock:
        op = Operation(ops, action, lock, time.monotonic() if started is None else started, release)
        try:
            yield op
        except BaseException as exc:
            if not op.recorded:
                op.record("failed", error=failure_text(exc))
            raise


def failure_text(exc: BaseException) -> str:
    """One line for the audit log and the error message: a gate's own words, or the error's line."""
    if isinstance(exc, NotSwitched):
        return exc.what
    if isinstance(exc, GateFailure):
        return str(exc)
    if isinstance(exc, SchedgenError):
        return exc.one_line()
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def _holder_dict(state: Path) -> dict[str, Any] | None:
    holder = read_holder(state / "deploy.lock")
    return None if holder is None else holder.__dict__
