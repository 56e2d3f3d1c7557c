"""The one interface every runtime (local, compose, kubernetes) implements, and the shapes it reports.

Commands talk to `Runtime` only; which runtime answers is a deploy-target choice. Status shapes are
plain dataclasses so `status --json` is the same document whatever the runtime.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Callable

    from schedgen_ops.runtime.endpoints import StackEndpoints
    from schedgen_ops.runtime.gate import GateReport

from schedgen_ops.errors import SchedgenError

#: Services a user may scale, and the names each runtime gives them.
SCALABLE_SERVICES = ("api", "pdf-worker")


@dataclass
class ProcessStatus:
    """One process / container / pod of a service; a measurement the runtime cannot see stays None."""

    #: supervisord program, container or pod name.
    name: str
    #: The runtime's own word, lower-case: running, stopped, exited, pending, ...
    state: str
    pid: int | None = None
    #: Seconds since it started.
    uptime_s: float | None = None
    restarts: int | None = None
    #: Percent of one core, and resident bytes.
    cpu_percent: float | None = None
    memory_bytes: int | None = None
    #: A probe's verdict in words (local: readiness and rotation; compose: the healthcheck).
    health: str | None = None


@dataclass
class ServiceStatus:
    """Desired versus running for one service, with its processes."""

    name: str
    desired: int
    running: int
    health: str
    processes: list[ProcessStatus] = field(default_factory=list)

    @property
    def restarts(self) -> int:
        return sum(p.restarts or 0 for p in self.processes)

    @property
    def cpu_percent(self) -> float | None:
        values = [p.cpu_percent for p in self.processes if p.cpu_percent is not None]
        return round(sum(values), 1) if values else None

    @property
    def memory_bytes(self) -> int | None:
        values = [p.memory_bytes for p in self.processes if p.memory_bytes is not None]
        return sum(values) if values else None

    @property
    def uptime_s(self) -> float | None:
        values = [p.uptime_s for p in self.processes if p.uptime_s is not None]
        return min(values) if values else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            restarts=self.restarts,
            cpu_percent=self.cpu_percent,
            memory_bytes=self.memory_bytes,
            uptime_s=self.uptime_s,
        )
        return data


@dataclass
class StackStatus:
    """What `schedgen status` reports."""

    target: str
    release: str | None
    services: list[ServiceStatus]
    urls: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "release": self.release,
            "urls": dict(self.urls),
            "services": [s.to_dict() for s in self.services],
        }


@runtime_checkable
class Runtime(Protocol):
    """Operations on one deployed stack. ``tree`` is a rendered tree's runtime directory."""

    name: str

    def up(self, tree: Path) -> None:
        """Start the stack from ``tree``; a no-op for what already runs (idempotent)."""

    def deploy(self, tree: Path) -> None:
        """Apply ``tree`` to a (possibly running) stack, replacing the service processes."""

    def down(self, *, volumes: bool = False) -> None:
        """Stop everything; ``volumes`` also deletes the data (never implied)."""

    def status(self) -> list[ServiceStatus]:
        """Desired/running/health/resources per service."""

    def scale(self, counts: Mapping[str, int]) -> None:
        """Set the number of replicas/processes for each named service."""

    def logs(
        self, service: str, *, follow: bool = False, since: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        """Lines of a service's logs, oldest first."""

    def exec(self, service: str, command: list[str]) -> int:
        """Run ``command`` inside a service's environment; returns its exit code."""

    def rollback(self, tree: Path) -> None:
        """Put a previous release's ``tree`` back (configuration and processes; never data)."""

    def gate(self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]) -> GateReport:
        """Prove the stack from ``tree`` does real work; raise `GateFailure` naming what did not."""

    def deploy_gated(
        self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]
    ) -> GateReport:
        """Deploy (or roll back to) ``tree`` and pass the gate, each runtime as safely as it can.

        Local and compose stage the new release beside the serving one and gate it before traffic moves
        (a failure then raises `NotSwitched`: the operation needs no rollback); kubernetes applies, waits
        for the rollout and gates."""

    def urls(self) -> dict[str, str]:
        """Where the running stack's api answers, by replica (empty when not reachable from here)."""

    def endpoints(self) -> StackEndpoints:
        """Where the running stack answers from this machine: api, data services, control socket."""


class NotSwitched(SchedgenError):
    """A staged deploy failed before traffic moved: the serving release was never touched."""

    def __init__(self, what: str):
        super().__init__(what, code="deploy_not_switched")
        self.what = what
