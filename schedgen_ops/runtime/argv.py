"""Pure functions that build every external command the compose and kubernetes runtimes run.

Nothing here executes anything: each function returns an argv list, so every command is reviewable in
a golden test and printable by ``--dry-run`` exactly as it would run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# ------------------------------------------------------------------------------------------------ local


def supervisord_start(conf: Path, binary: str = "supervisord") -> list[str]:
    """Start supervisord (it daemonizes once its control socket is up); the rest goes over XML-RPC."""
    return [binary, "--configuration", str(conf)]


# --------------------------------------------------------------------------------------------- compose


@dataclass(frozen=True)
class ComposeProject:
    """``docker compose -p NAME -f base -f overlay ...``: the prefix shared by every compose command."""

    name: str
    files: tuple[Path, ...]
    env_file: Path | None = None

    def prefix(self) -> list[str]:
        argv = ["docker", "compose", "-p", self.name]
        for path in self.files:
            argv += ["-f", str(path)]
        if self.env_file is not None:
            argv += ["--env-file", str(self.env_file)]
        return argv


def compose_config_check(project: ComposeProject) -> list[str]:
    """Let compose itself validate the merged files (pre-flight)."""
    return [*project.prefix(), "config", "--quiet"]


def compose_images(project: ComposeProject) -> list[str]:
    """Every image the merged files name, one per line."""
    return [*project.prefix(), "config", "--images"]


def docker_pull(image: str) -> list[str]:
    """Pull one image (only ever for an image the engine does not have)."""
    return ["docker", "pull", "--quiet", image]


def compose_up(
    project: ComposeProject,
    *,
    wait: bool = True,
    timeout_s: int = 300,
    scale: Mapping[str, int] | None = None,
) -> list[str]:
    """Create or update the stack in the background; ``--wait`` blocks on healthchecks.

    ``--pull never``: images are made present before (built or pulled on purpose), never implicitly.
    ``scale`` keeps counts set with `schedgen scale` across a deploy.
    """
    argv = [*project.prefix(), "up", "-d", "--remove-orphans", "--pull", "never"]
    for service in sorted(scale or {}):
        argv += ["--scale", f"{service}={(scale or {})[service]}"]
    if wait:
        argv += ["--wait", "--wait-timeout", str(timeout_s)]
    return argv


def compose_scale(project: ComposeProject, counts: Mapping[str, int]) -> list[str]:
    """Change replica counts without recreating running containers (graceful: SIGTERM + grace period)."""
    argv = [*project.prefix(), "up", "-d", "--no-recreate", "--no-deps"]
    for service in sorted(counts):
        argv += ["--scale", f"{service}={counts[service]}"]
    return argv + sorted(counts)


def compose_services(project: ComposeProject) -> list[str]:
    """Every service of the merged files, one per line (a rolling deploy converges all but the app)."""
    return [*project.prefix(), "config", "--services"]


def compose_up_services(project: ComposeProject, services: Sequence[str]) -> list[str]:
    """Converge only ``services`` (the data services and one-shots before a roll). No ``--wait``: it
    fails on a targeted one-shot that exits 0; the one-shots are awaited with `docker_wait`."""
    return [*project.prefix(), "up", "-d", "--remove-orphans", "--pull", "never", *services]


def compose_surge(project: ComposeProject, counts: Mapping[str, int], *, timeout_s: int = 300) -> list[str]:
    """Start new containers beside the running ones (docker-rollout): ``--no-recreate`` keeps every
    existing container as it is, so only the added replicas run the new configuration; ``--no-deps``:
    the dependencies were converged (and the migrations run) just before; ``--wait`` returns once every
    container of the services is healthy."""
    argv = [*project.prefix(), "up", "-d", "--no-deps", "--no-recreate", "--pull", "never"]
    for service in sorted(counts):
        argv += ["--scale", f"{service}={counts[service]}"]
    return [*argv, "--wait", "--wait-timeout", str(timeout_s), *sorted(counts)]


def compose_recreate(project: ComposeProject, services: Sequence[str]) -> list[str]:
    """Recreate ``services`` whose mounted files changed under the same path (compose compares paths)."""
    return [*project.prefix(), "up", "-d", "--no-deps", "--force-recreate", "--pull", "never", *services]


def compose_up_no_deps(project: ComposeProject, services: Sequence[str]) -> list[str]:
    """Converge ``services`` alone (Traefik after a roll: recreated only when its own config changed)."""
    return [*project.prefix(), "up", "-d", "--no-deps", "--pull", "never", *services]


def docker_stop(containers: Sequence[str]) -> list[str]:
    """SIGTERM, then each container's own stop_grace_period before SIGKILL (no ``-t``: the grace is
    the container's, so a worker finishes its job and uvicorn its in-flight requests)."""
    return ["docker", "stop", *containers]


def docker_rm(containers: Sequence[str], *, force: bool = False) -> list[str]:
    """Remove stopped containers; ``force`` only for ones that are not running anyway (restarting)."""
    return ["docker", "rm", *(["--force"] if force else []), *containers]


def docker_wait(containers: Sequence[str]) -> list[str]:
    """Block until each container has exited; prints one exit code per line (the one-shots of a roll)."""
    return ["docker", "wait", *containers]


def docker_exec(container: str, command: Sequence[str]) -> list[str]:
    """Run a command in one container by id, without a TTY (replica numbers change in a roll)."""
    return ["docker", "exec", container, *command]


def compose_ps(project: ComposeProject) -> list[str]:
    """Every container of the project, stopped ones included, as JSON lines."""
    return [*project.prefix(), "ps", "--all", "--format", "json"]


def compose_logs(
    project: ComposeProject,
    service: str,
    *,
    follow: bool = False,
    since: str | None = None,
    tail: int | None = None,
) -> list[str]:
    """A service's logs (every replica), with timestamps, without colour codes."""
    argv = [*project.prefix(), "logs", "--no-color", "--timestamps"]
    if since:
        argv += ["--since", since]
    if tail is not None:
        argv += ["--tail", str(tail)]
    if follow:
        argv.append("--follow")
    return [*argv, service]


def compose_exec(
    project: ComposeProject, service: str, command: Sequence[str], *, index: int = 1
) -> list[str]:
    """Run a command in one replica without a TTY (scripts and CI have none)."""
    return [*project.prefix(), "exec", "-T", "--index", str(index), service, *command]


def compose_run(project: ComposeProject, service: str, command: Sequence[str]) -> list[str]:
    """A one-off container of ``service`` (its image, volumes and networks), removed afterwards."""
    return [*project.prefix(), "run", "--rm", "--no-deps", "-T", service, *command]


def compose_restart(project: ComposeProject, services: Sequence[str]) -> list[str]:
    """Restart services in place (SIGTERM, grace period, start)."""
    return [*project.prefix(), "restart", *services]


def compose_down(project: ComposeProject, *, volumes: bool = False) -> list[str]:
    """Stop and remove the stack; ``-v`` deletes named volumes and is only ever passed when asked."""
    argv = [*project.prefix(), "down", "--remove-orphans"]
    if volumes:
        argv.append("-v")
    return argv


# ------------------------------------------------------------------------------------------ kubernetes


@dataclass(frozen=True)
class KubeTarget:
    """Cluster context and namespace: the prefix shared by every kubectl command."""

    namespace: str
    context: str | None = None

    def prefix(self) -> list[str]:
        argv = ["kubectl"]
        if self.context:
            argv += ["--context", self.context]
        return [*argv, "--namespace", self.namespace]


def kubectl_diff(target: KubeTarget, kustomize_dir: Path) -> list[str]:
    """What an apply would change (exit 1 means "differences", not failure)."""
    return [*target.prefix(), "diff", "-k", str(kustomize_dir)]


def kubectl_apply(target: KubeTarget, kustomize_dir: Path, *, server_dry_run: bool = False) -> list[str]:
    """Apply the rendered kustomization; ``server_dry_run`` lets the API server validate it first."""
    argv = [*target.prefix(), "apply", "-k", str(kustomize_dir)]
    if server_dry_run:
        argv.append("--dry-run=server")
    return argv


def kubectl_rollout_status(target: KubeTarget, deployment: str, *, timeout_s: int = 300) -> list[str]:
    """Block until a deployment's new pods are ready (or the timeout passes: exit non-zero)."""
    return [*target.prefix(), "rollout", "status", f"deployment/{deployment}", f"--timeout={timeout_s}s"]


def kubectl_rollout_undo(target: KubeTarget, deployment: str) -> list[str]:
    """Return a deployment to its previous ReplicaSet (used when no release tree can be re-applied)."""
    return [*target.prefix(), "rollout", "undo", f"deployment/{deployment}"]


def kubectl_scale(target: KubeTarget, deployment: str, replicas: int) -> list[str]:
    """Fixed replica count for a deployment with no autoscaler."""
    return [*target.prefix(), "scale", f"deployment/{deployment}", f"--replicas={replicas}"]


def kubectl_patch_hpa(target: KubeTarget, name: str, minimum: int, maximum: int) -> list[str]:
    """Set a HorizontalPodAutoscaler's bounds (scaling an autoscaled deployment directly is undone)."""
    patch = {"spec": {"minReplicas": minimum, "maxReplicas": maximum}}
    return [*target.prefix(), "patch", "hpa", name, "--type=merge", "-p", json.dumps(patch, sort_keys=True)]


def kubectl_patch_scaledobject(target: KubeTarget, name: str, minimum: int, maximum: int) -> list[str]:
    """Set a KEDA ScaledObject's bounds (KEDA owns the worker deployment's replica count)."""
    patch = {"spec": {"maxReplicaCount": maximum, "minReplicaCount": minimum}}
    return [
        *target.prefix(),
        "patch",
        "scaledobject.keda.sh",
        name,
        "--type=merge",
        "-p",
        json.dumps(patch, sort_keys=True),
    ]


def kubectl_get_json(target: KubeTarget, kind: str, *, selector: str | None = None) -> list[str]:
    """Objects of one kind as JSON (status reads deployments, pods, hpa, scaledobjects)."""
    argv = [*target.prefix(), "get", kind, "-o", "json"]
    if selector:
        argv += ["-l", selector]
    return argv


def kubectl_logs(
    target: KubeTarget,
    selector: str,
    *,
    follow: bool = False,
    since: str | None = None,
    tail: int | None = None,
) -> list[str]:
    """Logs of every pod of a service, each line prefixed with its pod."""
    argv = [
        *target.prefix(),
        "logs",
        "-l",
        selector,
        "--all-containers",
        "--prefix",
        "--timestamps",
        "--max-log-requests=50",
    ]
    if since:
        argv.append(f"--since={since}")
    argv.append(f"--tail={tail if tail is not None else -1}")
    if follow:
        argv.append("--follow")
    return argv


def kubectl_exec(target: KubeTarget, deployment: str, command: Sequence[str]) -> list[str]:
    """Run a command in one pod of a deployment."""
    return [*target.prefix(), "exec", f"deployment/{deployment}", "--", *command]


def kubectl_top(target: KubeTarget, selector: str) -> list[str]:
    """CPU and memory per pod (needs metrics-server; absent -> non-zero exit, status shows none)."""
    return [*target.prefix(), "top", "pods", "-l", selector, "--no-headers"]


#: Kinds `down` removes; PersistentVolumeClaims are absent on purpose (data survives a plain `down`).
WORKLOAD_KINDS = (
    "deployments,statefulsets,cronjobs,jobs,services,ingresses,horizontalpodautoscalers,"
    "scaledobjects.keda.sh,poddisruptionbudgets,networkpolicies,configmaps,secrets"
)


def kubectl_delete_workloads(target: KubeTarget, selector: str) -> list[str]:
    """Remove the stack's objects but not its volume claims."""
    return [*target.prefix(), "delete", WORKLOAD_KINDS, "-l", selector, "--ignore-not-found", "--wait=true"]


def kubectl_delete_pvcs(target: KubeTarget, selector: str) -> list[str]:
    """Delete persistent volume claims of the stack (data!): only with ``down --volumes``."""
    return [*target.prefix(), "delete", "pvc", "-l", selector, "--ignore-not-found"]
