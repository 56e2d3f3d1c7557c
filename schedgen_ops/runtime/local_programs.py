"""The local runtime's program control: start, stop and wait for supervisord programs, or, in a dry run,
say what would be started or stopped (the same calls, so the plan and the run cannot drift apart).

Errors name the program's log and quote its last lines, which is where a failed start explains itself.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.gate import GateFailure, wait_ready
from schedgen_ops.runtime.runner import Runner
from schedgen_ops.runtime.supervisor import RUNNING_STATES, SupervisorClient


class Programs:
    """supervisord programs of one stack, started and stopped through ``runner`` (dry run: notes)."""

    def __init__(self, supervisor: SupervisorClient, runner: Runner, logs_dir: Path) -> None:
        self.supervisor = supervisor
        self.runner = runner
        self.logs_dir = logs_dir

    def start_error(self, name: str, why: str) -> SchedgenError:
        """``name`` did not start: why, with the last lines of its log."""
        log = self.logs_dir / f"{name.split(':')[-1]}.log"
        tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.exists() else []
        return SchedgenError(
            f"{name} failed to start ({why}): {' | '.join(tail)}", code="process_failed", hint=f"see {log}"
        )

    def _only_noted(self, verb: str, names: Sequence[str]) -> bool:
        """Nothing to do for real: no names, or a dry run (which notes each one instead)."""
        if names and self.runner.dry_run:
            for name in names:
                self.runner.note(f"{verb} {name}")
        return not names or self.runner.dry_run

    def start(self, names: Sequence[str], timeout_s: float = 120) -> None:
        """Start processes together and wait until each is RUNNING (past its startsecs)."""
        if self._only_noted("start", names):
            return
        refused = self.supervisor.start(names)
        if refused is not None:
            name, fault = refused
            raise self.start_error(name, fault.faultString) from fault
        failed = self.supervisor.wait_running(names, timeout_s)
        if failed is not None:
            raise self.start_error(*failed)

    def stop(self, names: Sequence[str], timeout_s: float = 600) -> None:
        """Stop processes concurrently and wait until each has exited (workers finish their job)."""
        if self._only_noted("stop", names):
            return
        self.supervisor.stop(names)
        if not self.supervisor.wait_stopped(names, timeout_s):
            raise SchedgenError(
                f"{', '.join(names)} did not stop within {timeout_s:.0f}s", code="stop_timeout"
            )

    def running_keys(self, group: str) -> list[str]:
        """Keys of a group's running slots, in slot order."""
        keys = self.supervisor.group_keys(group, RUNNING_STATES)
        return sorted(keys, key=lambda key: int(key.rsplit("-", 1)[1]))

    def reload_groups(self, keep: set[str]) -> list[str]:
        """supervisord re-reads the active conf; changed groups are re-added, except the ``keep`` ones
        (the serving colour keeps its running definition). Returns the kept groups that changed."""
        added, changed, removed = self.supervisor.reload()
        for group in removed + changed:
            if group in keep:
                continue
            self.stop(self.supervisor.group_keys(group))
            self.supervisor.remove_group(group)
        for group in changed + added:
            if group not in keep:
                self.supervisor.add_group(group)
        return [g for g in changed if g in keep]

    def wait_ready(self, urls: Mapping[str, str], timeout_s: float = 120) -> None:
        """Each api slot (name -> its address) answers /readyz, before the front door sends it anything."""
        if self.runner.dry_run or not urls:
            return
        import httpx

        with httpx.Client() as client:
            for slot, url in urls.items():
                try:
                    wait_ready(client, url, timeout_s)
                except GateFailure as exc:
                    raise self.start_error(slot, exc.detail) from exc


def wait_tcp(port: int, what: str, timeout_s: float = 30) -> None:
    """Until something listens on 127.0.0.1:``port`` (a server that is up but not yet bootstrapped)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise SchedgenError(f"{what} did not listen on port {port} within {timeout_s:.0f}s", code="start_timeout")
