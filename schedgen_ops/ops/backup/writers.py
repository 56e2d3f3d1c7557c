"""Stop the processes that write (api, workers) before a restore and start them again afterwards.

One small class per runtime; each builds its commands with pure functions (argv tests) and runs them
with checked exit codes. Only what was running before is started again.
"""

from __future__ import annotations

import xmlrpc.client
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.streaming import run_checked
from schedgen_ops.runtime.argv import ComposeProject, KubeTarget
from schedgen_ops.runtime.supervisor import ACTIVE_STATES, SupervisorClient, colourless, process_states

#: Program groups / services / deployments that write to the database.
WRITER_SERVICES = ("api", "pdf-worker")


class Writers(Protocol):
    def stop(self) -> list[str]:
        """Stop every writer; return the names that were running (and are now stopped)."""

    def start(self, names: Sequence[str]) -> list[str]:
        """Start the given writers again; return their names."""


@dataclass
class NoWriters:
    """An external database with no writers under our control: the operator must stop them (documented)."""

    def stop(self) -> list[str]:
        return []

    def start(self, names: Sequence[str]) -> list[str]:
        del names
        return []


# ------------------------------------------------------------------------------------------- supervisord


@dataclass
class SupervisorWriters:
    """The local runtime: the ``api`` and ``pdf-worker`` supervisord groups, over its XML-RPC socket.

    Stopping sends each slot one SIGTERM (RQ workers finish their current job) and waits until every
    slot has exited, so no writer holds a database session when the restore starts.
    """

    sock: Path
    groups: tuple[str, ...] = WRITER_SERVICES
    timeout_s: float = 600.0

    @property
    def _client(self) -> SupervisorClient:
        return SupervisorClient(self.sock)

    def _states(self) -> dict[str, str]:
        try:
            infos = self._client.infos()
        except (OSError, xmlrpc.client.Error) as exc:
            raise SchedgenError(
                f"supervisord is not reachable on {self.sock}: {exc}",
                code="supervisor_unreachable",
                hint="is the local runtime up (`schedgen up`)? or restore with --no-writers-control",
            ) from exc
        # A blue/green local runtime runs each service as two colour groups (api-blue, api-green, ...).
        return process_states((p for p in infos if colourless(p["group"]) in self.groups), bare=False)

    def stop(self) -> list[str]:
        running = sorted(name for name, state in self._states().items() if state in ACTIVE_STATES)
        self._client.stop(running)
        if not self._client.wait_stopped(running, self.timeout_s, poll_s=0.1, states=self._states):
            raise SchedgenError(
                f"writers did not stop within {self.timeout_s:.0f}s: {', '.join(running)}",
                code="stop_timeout",
                hint="they may be finishing long jobs; retry, or stop them with `schedgen scale`",
            )
        return running

    def start(self, names: Sequence[str]) -> list[str]:
        refused = self._client.start(names, wait=True)
        if refused is not None:
            name, fault = refused
            raise SchedgenError(
                f"{name} did not start again after the restore: {fault.faultString}",
                code="process_failed",
                hint="see its log under .schedgen/logs/",
            ) from fault
        return list(names)


# ------------------------------------------------------------------------------------- compose / kubernetes


def compose_stop_argv(project: ComposeProject, services: Sequence[str]) -> list[str]:
    return [*project.prefix(), "stop", *services]


def compose_start_argv(project: ComposeProject, services: Sequence[str]) -> list[str]:
    return [*project.prefix(), "start", *services]


@dataclass
class ComposeWriters:
    project: ComposeProject
    services: tuple[str, ...] = WRITER_SERVICES

    def stop(self) -> list[str]:
        run_checked(compose_stop_argv(self.project, self.services), what="stopping writers")
        return list(self.services)

    def start(self, names: Sequence[str]) -> list[str]:
        if names:
            run_checked(compose_start_argv(self.project, names), what="starting writers")
        return list(names)


def kube_replicas_argv(target: KubeTarget, deployment: str) -> list[str]:
    return [*target.prefix(), "get", f"deployment/{deployment}", "-o", "jsonpath={.spec.replicas}"]


def kube_scale_argv(target: KubeTarget, deployment: str, replicas: int) -> list[str]:
    return [*target.prefix(), "scale", f"deployment/{deployment}", f"--replicas={replicas}"]


def kube_pause_keda_argv(target: KubeTarget, scaledobject: str, paused: bool) -> list[str]:
    """KEDA would scale a worker deployment straight back up: pause it at 0 replicas while restoring."""
    annotation = "autoscaling.keda.sh/paused-replicas"
    value = f"{annotation}=0" if paused else f"{annotation}-"
    return [*target.prefix(), "annotate", f"scaledobject.keda.sh/{scaledobject}", value, "--overwrite"]


@dataclass
class KubernetesWriters:
    target: KubeTarget
    deployments: tuple[str, ...] = WRITER_SERVICES
    scaledobjects: tuple[str, ...] = ("pdf-worker",)
    previous: dict[str, int] = field(default_factory=dict)

    def stop(self) -> list[str]:
        for name in self.scaledobjects:
            run_checked(kube_pause_keda_argv(self.target, name, True), what=f"pausing autoscaling of {name}")
        for name in self.deployments:
            out = run_checked(kube_replicas_argv(self.target, name), what=f"reading replicas of {name}")
            self.previous[name] = int(out.strip() or 0)
            run_checked(kube_scale_argv(self.target, name, 0), what=f"scaling {name} to 0")
        return list(self.deployments)

    def start(self, names: Sequence[str]) -> list[str]:
        for name in names:
            run_checked(
                kube_scale_argv(self.target, name, self.previous.get(name, 1)), what=f"scaling {name} back"
            )
        for name in self.scaledobjects:
            run_checked(
                kube_pause_keda_argv(self.target, name, False), what=f"resuming autoscaling of {name}"
            )
        return list(names)
