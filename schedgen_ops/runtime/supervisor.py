"""The supervisord client: XML-RPC over its unix control socket, and the daemon's process tree.

One home for how programs are started, stopped and watched, shared by the local runtime (deploy, scale,
down) and by backup's writers control (a restore stops the api and workers, then starts them again).

A process is named by its key ``group:program``; a program alone in a group of its own name (``postgres``,
``frontdoor``) also answers to its bare name. Api and worker groups come in two colours (``api-blue``,
``api-green``): `colourless` gives the service a group belongs to.
"""

from __future__ import annotations

import contextlib
import re
import time
import xmlrpc.client
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

#: States in which a process may still run (and write): not yet stopped.
ACTIVE_STATES = ("RUNNING", "STARTING", "BACKOFF", "STOPPING")
#: States of a process that runs or is about to.
RUNNING_STATES = frozenset({"RUNNING", "STARTING", "BACKOFF"})
#: States in which a started process has given up.
FAILED_STATES = ("FATAL", "STOPPED", "EXITED")


def colourless(group: str) -> str:
    """The service of a program group: ``api-blue`` -> ``api``; other groups are their own service."""
    return re.sub(r"-(blue|green)$", "", group)


def process_states(infos: Iterable[Mapping[str, Any]], *, bare: bool = True) -> dict[str, str]:
    """State of each process by key; with ``bare``, also by program name where group == program."""
    infos = list(infos)
    states = {f"{p['group']}:{p['name']}": p["statename"] for p in infos}
    if bare:
        states.update({p["name"]: p["statename"] for p in infos if p["group"] == p["name"]})
    return states


@dataclass(frozen=True)
class SupervisorClient:
    """Requests to one supervisord; each call opens the socket afresh, so a restarted daemon is found."""

    sock: Path

    def proxy(self) -> Any:
        """The raw ``supervisor`` XML-RPC namespace (for calls this class does not wrap)."""
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, serverurl=f"unix://{self.sock}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def is_up(self) -> bool:
        """supervisord answers on the socket and is RUNNING (not starting up or shutting down)."""
        if not self.sock.exists():
            return False
        try:
            return bool(self.proxy().getState()["statename"] == "RUNNING")
        except (OSError, xmlrpc.client.Error):
            return False

    def infos(self) -> list[dict[str, Any]]:
        """supervisord's process table: one dict per process (group, name, statename, pid, start, ...)."""
        return list(self.proxy().getAllProcessInfo())

    def states(self) -> dict[str, str]:
        """State of every process by key (and bare name, see `process_states`)."""
        return process_states(self.infos())

    def state(self, name: str) -> str:
        """One process's state."""
        return str(self.proxy().getProcessInfo(name)["statename"])

    def group_keys(self, group: str, states: Collection[str] | None = None) -> list[str]:
        """Keys of a group's processes (only those in ``states`` when given), in supervisord's order."""
        return [
            f"{group}:{p['name']}"
            for p in self.infos()
            if p["group"] == group and (states is None or p["statename"] in states)
        ]

    def start(self, names: Sequence[str], *, wait: bool = False) -> tuple[str, xmlrpc.client.Fault] | None:
        """Ask for each of ``names`` to start, in order; an already started one counts as started.

        Returns the first refused name and supervisord's fault (the rest are then not asked), else None.
        With ``wait``, supervisord answers once each process is past its startsecs.
        """
        rpc = self.proxy()
        for name in names:
            try:
                rpc.startProcess(name, wait)
            except xmlrpc.client.Fault as fault:
                if "ALREADY_STARTED" not in fault.faultString:
                    return name, fault
        return None

    def stop(self, names: Iterable[str]) -> None:
        """Ask for each of ``names`` to stop (one SIGTERM each) without waiting; not running is fine."""
        rpc = self.proxy()
        for name in names:
            with contextlib.suppress(xmlrpc.client.Fault):  # NOT_RUNNING: it exited meanwhile
                rpc.stopProcess(name, False)

    def wait_running(self, names: Collection[str], timeout_s: float) -> tuple[str, str] | None:
        """Wait until each of ``names`` is RUNNING; else the first that failed (or timed out) and why."""
        pending = set(names)
        deadline = time.monotonic() + timeout_s
        while pending:
            states = self.states()
            for name in list(pending):
                if states.get(name) == "RUNNING":
                    pending.discard(name)
                elif states.get(name) in FAILED_STATES:
                    return name, states[name]
            if pending and time.monotonic() > deadline:
                return sorted(pending)[0], f"not running after {timeout_s:.0f}s"
            if pending:
                time.sleep(0.1)
        return None

    def wait_stopped(
        self,
        names: Collection[str],
        timeout_s: float,
        *,
        poll_s: float = 0.2,
        states: Callable[[], Mapping[str, str]] | None = None,
    ) -> bool:
        """Wait until none of ``names`` is in an `ACTIVE_STATES` state; False when ``timeout_s`` ran out.

        ``states`` reads the process table (default: `states`), for callers that report errors their way.
        """
        read = states or self.states
        deadline = time.monotonic() + timeout_s
        while True:
            current = read()
            if all(current.get(name) not in ACTIVE_STATES for name in names):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(poll_s)

    def reload(self) -> tuple[list[str], list[str], list[str]]:
        """Re-read the configuration file: the groups (added, changed, removed); none is applied yet."""
        added, changed, removed = self.proxy().reloadConfig()[0]
        return list(added), list(changed), list(removed)

    def add_group(self, group: str) -> None:
        self.proxy().addProcessGroup(group)

    def remove_group(self, group: str) -> None:
        self.proxy().removeProcessGroup(group)

    def refresh_group(self, group: str) -> None:
        """Re-add a stopped group so its next start uses the configuration file's definition."""
        with contextlib.suppress(xmlrpc.client.Fault):
            self.remove_group(group)
        with contextlib.suppress(xmlrpc.client.Fault):
            self.add_group(group)

    def shutdown(self) -> None:
        """Stop every program (waiting for each), then supervisord itself."""
        rpc = self.proxy()
        rpc.stopAllProcesses(True)
        rpc.shutdown()


# ------------------------------------------------------------------------------------- the daemon's processes


def daemon_pid(pidfile: Path) -> int | None:
    """The pid supervisord wrote, when that process still exists."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (its programs and theirs); none when it is gone."""
    with contextlib.suppress(psutil.Error):
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    return []


def wait_gone(pids: list[int], timeout_s: float) -> None:
    """Wait until ``pids`` have exited; kill any left after ``timeout_s`` (never leave strays)."""
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    _, alive = psutil.wait_procs(procs, timeout=timeout_s)
    for proc in alive:  # should not happen: supervisord stops its children
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)
