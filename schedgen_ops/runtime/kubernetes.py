"""The Kubernetes runtime: kubectl over the rendered kustomization.

The api is autoscaled by an HPA and the workers by a KEDA ScaledObject, so `scale` sets the autoscaler's
minimum (and keeps its maximum at least that), never the Deployment's replicas, which the autoscaler
would undo. Rollback re-applies the previous release's kustomization and waits for the rollout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime import argv as A
from schedgen_ops.runtime.base import ProcessStatus, ServiceStatus
from schedgen_ops.runtime.endpoints import StackEndpoints
from schedgen_ops.runtime.engine import parse_docker_time
from schedgen_ops.runtime.gate import GateReport
from schedgen_ops.runtime.runner import Runner

#: service -> (deployment, label selector, autoscaler kind, autoscaler name)
SERVICES = {
    "api": ("api", "app.kubernetes.io/name=schedgen,app.kubernetes.io/component=api", "hpa", "api"),
    "pdf-worker": (
        "pdf-worker",
        "app.kubernetes.io/name=schedgen,app.kubernetes.io/component=worker",
        "scaledobject",
        "pdf-worker",
    ),
}
STACK_SELECTOR = "app.kubernetes.io/managed-by=schedgen"


class KubernetesRuntime:
    name = "kubernetes"

    def __init__(
        self,
        target: A.KubeTarget,
        runner: Runner,
        *,
        tree: Path | None = None,
        bounds: Mapping[str, tuple[int, int]] | None = None,
        rollout_timeout_s: int = 300,
    ):
        self.target = target
        self.runner = runner
        self.tree = tree
        self.bounds = dict(bounds or {})
        self.rollout_timeout_s = rollout_timeout_s

    def _kustomization(self, tree: Path | None) -> Path:
        tree = tree or self.tree
        if tree is None:
            raise SchedgenError(
                "no deployed kubernetes tree",
                code="no_release",
                hint="run `schedgen deploy --target kubernetes`",
            )
        return tree / "kubernetes"

    def up(self, tree: Path) -> None:
        self.deploy(tree)

    def deploy(self, tree: Path) -> None:
        """Server-side dry run first (the API server validates everything), then apply and wait."""
        kustomization = self._kustomization(tree)
        self.runner.run(A.kubectl_apply(self.target, kustomization, server_dry_run=True))
        self.runner.run(A.kubectl_apply(self.target, kustomization))
        for deployment, *_ in SERVICES.values():
            self.runner.run(
                A.kubectl_rollout_status(self.target, deployment, timeout_s=self.rollout_timeout_s)
            )
        self.tree = tree

    def rollback(self, tree: Path | None) -> None:
        """Re-apply an earlier release; with no tree, undo to each Deployment's previous ReplicaSet."""
        if tree is None:
            for deployment, *_ in SERVICES.values():
                self.runner.run(A.kubectl_rollout_undo(self.target, deployment))
                self.runner.run(
                    A.kubectl_rollout_status(self.target, deployment, timeout_s=self.rollout_timeout_s)
                )
            return
        self.deploy(tree)

    def gate(self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]) -> GateReport:
        """`kubectl rollout status` in deploy waited on every readiness probe; no cluster runs here to
        exec a canary into, so the HTTP canary is not run on this target (said, not implied)."""
        del tree, canary, timeout_s
        if self.runner.dry_run:
            self.runner.note("health gate: the kubectl rollout status above")
            return GateReport()
        echo("gate: kubectl rollout status passed (no canary upload on kubernetes)")
        return GateReport(checks={"rollout": "ok"})

    def deploy_gated(
        self, tree: Path, *, canary: bool, timeout_s: float, echo: Callable[[str], None]
    ) -> GateReport:
        """Apply and wait for the rollout (`deploy`), then the gate; a rollback is the same apply."""
        self.deploy(tree)
        return self.gate(tree, canary=canary, timeout_s=timeout_s, echo=echo)

    def urls(self) -> dict[str, str]:
        return {}

    def endpoints(self) -> StackEndpoints:
        """Nothing of the cluster is published on this machine: on-call passes URLs (a port-forward)."""
        return StackEndpoints(self.name, tree=self.tree)

    def down(self, *, volumes: bool = False) -> None:
        self.runner.run(A.kubectl_delete_workloads(self.target, STACK_SELECTOR))
        if volumes:
            self.runner.run(A.kubectl_delete_pvcs(self.target, STACK_SELECTOR))

    def scale(self, counts: Mapping[str, int]) -> None:
        for service, count in counts.items():
            if service not in SERVICES:
                raise SchedgenError(
                    f"cannot scale {service!r}", code="bad_service", hint="use api or pdf-worker", exit_code=2
                )
            _, _, kind, name = SERVICES[service]
            _, maximum = self.bounds.get(service, (count, count))
            maximum = max(maximum, count)
            if kind == "hpa":
                self.runner.run(A.kubectl_patch_hpa(self.target, name, count, maximum))
            else:
                self.runner.run(A.kubectl_patch_scaledobject(self.target, name, count, maximum))

    def status(self) -> list[ServiceStatus]:
        deployments = json.loads(
            self.runner.run(
                A.kubectl_get_json(self.target, "deployments", selector=STACK_SELECTOR), read_only=True
            ).stdout
            or "{}"
        )
        by_name = {d["metadata"]["name"]: d for d in deployments.get("items", [])}
        result = []
        for service, (deployment, selector, _, _) in SERVICES.items():
            spec = by_name.get(deployment, {})
            desired = int(spec.get("spec", {}).get("replicas", 0) or 0)
            ready = int(spec.get("status", {}).get("readyReplicas", 0) or 0)
            pods = json.loads(
                self.runner.run(
                    A.kubectl_get_json(self.target, "pods", selector=selector), read_only=True
                ).stdout
                or "{}"
            )
            usage = self._top(selector)
            processes = []
            for pod in pods.get("items", []):
                name = pod["metadata"]["name"]
                statuses = pod.get("status", {}).get("containerStatuses", [])
                started = parse_docker_time(pod.get("status", {}).get("startTime"))
                cpu, mem = usage.get(name, (None, None))
                processes.append(
                    ProcessStatus(
                        name=name,
                        state=pod.get("status", {}).get("phase", "Unknown").lower(),
                        uptime_s=(datetime.now(UTC) - started).total_seconds() if started else None,
                        restarts=sum(int(s.get("restartCount", 0)) for s in statuses),
                        cpu_percent=cpu,
                        memory_bytes=mem,
                        health="ready" if statuses and all(s.get("ready") for s in statuses) else "not ready",
                    )
                )
            result.append(
                ServiceStatus(
                    service, desired, ready, "ok" if ready >= desired > 0 else "degraded", processes
                )
            )
        return result

    def _top(self, selector: str) -> dict[str, tuple[float | None, int | None]]:
        """``kubectl top`` when metrics-server answers; nothing (not an error) when it does not."""
        result = self.runner.run(A.kubectl_top(self.target, selector), check=False, read_only=True)
        usage: dict[str, tuple[float | None, int | None]] = {}
        if not result.ok:
            return usage
        for line in result.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 3:
                usage[parts[0]] = (parse_cpu(parts[1]), parse_memory(parts[2]))
        return usage

    def logs(
        self, service: str, *, follow: bool = False, since: str | None = None, tail: int | None = None
    ) -> Iterator[str]:
        if service not in SERVICES:
            raise SchedgenError(
                f"no service {service!r}", code="bad_service", hint="use api or pdf-worker", exit_code=2
            )
        yield from self.runner.stream(
            A.kubectl_logs(self.target, SERVICES[service][1], follow=follow, since=since, tail=tail)
        )

    def exec(self, service: str, command: list[str]) -> int:
        deployment = SERVICES.get(service, (service,))[0]
        return self.runner.run(
            A.kubectl_exec(self.target, deployment, command), check=False, capture=False
        ).returncode


def parse_cpu(value: str) -> float | None:
    """``250m`` -> 25.0 (percent of one CPU), ``2`` -> 200.0."""
    try:
        return float(value[:-1]) / 10 if value.endswith("m") else float(value) * 100
    except ValueError:
        return None


def parse_memory(value: str) -> int | None:
    """``128Mi`` -> bytes."""
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2, "G": 1000**3}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            try:
                return int(float(value[: -len(suffix)]) * factor)
            except ValueError:
                return None
    return int(value) if value.isdigit() else None
