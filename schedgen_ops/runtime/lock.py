"""The deploy lock: one deploy, scale or rollback at a time per project.

The lock is ``.schedgen/deploy.lock``, a JSON file naming its holder (who, host, pid, when, action,
release). Taking it is serialised by an ``flock`` on a guard file, so two processes can never both see
it free. A lock whose holder process is gone (same host, dead pid) is stale and taken over; a lock held
from another host is only ever released by that host or by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import psutil

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.audit import current_user, utc_now

LOCK_FILE = "deploy.lock"


@dataclass
class LockHolder:
    """Who holds the lock, for the refusal message and `schedgen status`."""

    who: str
    host: str
    pid: int
    when: str
    action: str
    release: str | None = None

    def describe(self) -> str:
        release = f", release {self.release}" if self.release else ""
        return f"{self.action} by {self.who}@{self.host} (pid {self.pid}) since {self.when}{release}"

    def is_stale(self) -> bool:
        """Held by a process on this host that no longer exists."""
        if self.host != socket.gethostname():
            return False
        if self.pid <= 0 or not psutil.pid_exists(self.pid):
            return True
        with contextlib.suppress(psutil.Error):
            if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                return True
        return False


class DeployLock:
    """Context manager taking the project's deploy lock, waiting up to ``wait_s`` for it."""

    def __init__(
        self,
        state_dir: Path,
        action: str,
        *,
        release: str | None = None,
        wait_s: float = 0.0,
        poll_s: float = 0.5,
    ):
        self.path = state_dir / LOCK_FILE
        self.guard = state_dir / (LOCK_FILE + ".guard")
        self.action = action
        self.release = release
        self.wait_s = wait_s
        self.poll_s = poll_s
        self.held = False
        self.took_over: LockHolder | None = None

    @contextlib.contextmanager
    def _guarded(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.guard, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def holder(self) -> LockHolder | None:
        """The current holder, or None when the lock is free."""
        return read_holder(self.path)

    def _try(self) -> LockHolder | None:
        """Take the lock if free or stale; return the live holder when refused."""
        with self._guarded():
            current = read_holder(self.path)
            if current is not None and not current.is_stale():
                return current
            self.took_over = current
            me = LockHolder(
                who=current_user(),
                host=socket.gethostname(),
                pid=os.getpid(),
                when=utc_now(),
                action=self.action,
                release=self.release,
            )
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(me), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
            self.held = True
            return None

    def acquire(self) -> None:
        deadline = time.monotonic() + self.wait_s
        while True:
            holder = self._try()
            if holder is None:
                return
            if time.monotonic() >= deadline:
                waited = f" after waiting {self.wait_s:g}s" if self.wait_s else ""
                raise SchedgenError(
                    f"the deploy lock is held{waited}: {holder.describe()}",
                    code="locked",
                    hint="wait for it to finish or pass --lock-wait SECONDS; if that process is gone on "
                    f"another host, remove {self.path}",
                )
            time.sleep(self.poll_s)

    def set_release(self, release: str) -> None:
        """Name the release once it is known (the holder file shows it to whoever is refused)."""
        self.release = release
        with self._guarded():
            current = read_holder(self.path)
            if current is not None and current.pid == os.getpid():
                current.release = release
                self.path.write_text(json.dumps(asdict(current), indent=2) + "\n", encoding="utf-8")

    def release_lock(self) -> None:
        if not self.held:
            return
        with self._guarded():
            current = read_holder(self.path)
            if current is not None and current.pid == os.getpid() and current.host == socket.gethostname():
                self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> DeployLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release_lock()


def read_holder(path: Path) -> LockHolder | None:
    """Parse a lock file; a corrupt one counts as held by nobody we can name (and so is stale)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError):
        return LockHolder(who="?", host=socket.gethostname(), pid=0, when="?", action="?")
    try:
        return LockHolder(**{k: data.get(k) for k in LockHolder.__dataclass_fields__})
    except TypeError:
        return LockHolder(who="?", host=socket.gethostname(), pid=0, when="?", action="?")
