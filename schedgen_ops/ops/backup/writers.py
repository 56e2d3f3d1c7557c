"""Stop the processes that write (api, workers) before a restore and start them again afterwards.

One small class per runtime; each builds its commands with pure functions (argv tests) and runs them
with checked exit codes. Only what was running before is started again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from schedgen_ops.ops.backup.streaming import run_checked
from schedgen_ops.runtime.argv import ComposeProject, KubeTarget

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


def supervisorctl(conf: Path, *args: str) -> list[str]:
    return ["supervisorctl", "-c", str(conf), *args]


def supervisor_stop_argv(conf: Path, group: str) -> list[str]:
    return supervisorctl(conf, "stop", f"{group}:*")


def supervisor_start_argv(conf: Path, group: str) -> list[str]:
    return supervisorctl(conf, "start", f"{group}:*")


def supervisor_status_argv(conf: Path) -> list[str]:
    return supervisorctl(conf, "status")


def parse_supervisor_status(text: str) -> dict[str, str]:
    """``group:name   RUNNING   pid 1, uptime ...`` lines -> {"group:name": "RUNNING"}."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            states[parts[0]] = parts[1]
    return states


@dataclass
class SupervisorWriters:
    """The local runtime: supervisord program groups, driven through supervisorctl."""

    conf: Path
    groups: tuple[str, ...] = WRITER_SERVICES

    def _status(self) -> dict[str, str]:
        import subprocess

        # `status` exits 3 when some program is not running: that is an answer, not a failure.
        out = subprocess.run(supervisor_status_argv(self.conf), capture_output=True, text=True, check=False)
        if out.returncode not in (0, 3):
            from schedgen_ops.errors import SchedgenError

            raise SchedgenError(
                f"supervisorctl status failed: {(out.stderr or out.stdout).strip()[:300]}",
                code="supervisor_unreachable",
                hint="is the local runtime up? (`schedgen up`)",
            )
        return parse_supervisor_status(out.stdout)

    def running_groups(self) -> list[str]:
        states = self._status()
        return [
            group
            for group in self.groups
            if any(name.startswith(f"{group}:") and state == "RUNNING" for name, state in states.items())
        ]

    def stop(self) -> list[str]:
        running = self.running_groups()
        for group in running:
            run_checked(supervisor_stop_argv(self.conf, group), what=f"stopping {group}")
        return running

    def start(self, names: Sequence[str]) -> list[str]:
        for group in names:
            run_checked(supervisor_start_argv(self.conf, group), what=f"starting {group}")
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
