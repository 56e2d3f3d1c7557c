"""Golden argv for every compose and kubernetes operation: the exact commands a deploy runs."""

from __future__ import annotations

from pathlib import Path

from schedgen_ops.runtime import argv as A

BASE = Path("/p/deploy/compose/docker-compose.yml")
PROD = Path("/p/deploy/compose/docker-compose.prod.yml")
PROJECT = A.ComposeProject("schedgen", (BASE, PROD))
DC = ["docker", "compose", "-p", "schedgen", "-f", str(BASE), "-f", str(PROD)]
KT = A.KubeTarget("schedgen")
KC = ["kubectl", "--namespace", "schedgen"]


def test_compose_prefix_with_env_file_and_context() -> None:
    project = A.ComposeProject("x", (BASE,), env_file=Path("/p/.schedgen/secrets.env"))
    assert project.prefix() == [
        "docker",
        "compose",
        "-p",
        "x",
        "-f",
        str(BASE),
        "--env-file",
        "/p/.schedgen/secrets.env",
    ]
    assert A.KubeTarget("ns", context="prod").prefix() == [
        "kubectl",
        "--context",
        "prod",
        "--namespace",
        "ns",
    ]


def test_compose_up() -> None:
    up = [*DC, "up", "-d", "--remove-orphans", "--pull", "never"]
    assert A.compose_up(PROJECT) == [*up, "--wait", "--wait-timeout", "300"]
    assert A.compose_up(PROJECT, wait=False) == up
    assert A.compose_up(PROJECT, wait=False, scale={"pdf-worker": 3, "api": 2}) == [
        *up, "--scale", "api=2", "--scale", "pdf-worker=3",
    ]  # fmt: skip
    assert A.compose_images(PROJECT) == [*DC, "config", "--images"]
    assert A.docker_pull("redis:7") == ["docker", "pull", "--quiet", "redis:7"]


def test_compose_config_and_pull() -> None:
    assert A.compose_config_check(PROJECT) == [*DC, "config", "--quiet"]


def test_compose_scale_sorted_without_recreate() -> None:
    assert A.compose_scale(PROJECT, {"pdf-worker": 4, "api": 2}) == [
        *DC,
        "up",
        "-d",
        "--no-recreate",
        "--no-deps",
        "--scale",
        "api=2",
        "--scale",
        "pdf-worker=4",
        "api",
        "pdf-worker",
    ]


def test_rolling_deploy_commands() -> None:
    """A roll: list services and their config hashes, converge the rest, surge beside the serving ones."""
    assert A.compose_services(PROJECT) == [*DC, "config", "--services"]
    assert A.compose_up_services(PROJECT, ["postgres", "migrate"]) == [
        *DC, "up", "-d", "--remove-orphans", "--pull", "never", "postgres", "migrate",
    ]  # fmt: skip
    assert A.compose_surge(PROJECT, {"pdf-worker": 4, "api": 2}, timeout_s=120) == [
        *DC, "up", "-d", "--no-deps", "--no-recreate", "--pull", "never",
        "--scale", "api=2", "--scale", "pdf-worker=4", "--wait", "--wait-timeout", "120", "api", "pdf-worker",
    ]  # fmt: skip
    assert A.compose_recreate(PROJECT, ["postgres"]) == [
        *DC, "up", "-d", "--no-deps", "--force-recreate", "--pull", "never", "postgres",
    ]  # fmt: skip
    assert A.compose_up_no_deps(PROJECT, ["traefik"]) == [
        *DC,
        "up",
        "-d",
        "--no-deps",
        "--pull",
        "never",
        "traefik",
    ]


def test_retiring_containers_keeps_their_own_grace_period() -> None:
    """No ``-t``: docker stop waits each container's stop_grace_period (a worker's job timeout + 30 s)."""
    assert A.docker_stop(["c1", "c2"]) == ["docker", "stop", "c1", "c2"]
    assert A.docker_rm(["c1"]) == ["docker", "rm", "c1"]
    assert A.docker_rm(["c1", "c2"], force=True) == ["docker", "rm", "--force", "c1", "c2"]
    assert A.docker_wait(["m1", "m2"]) == ["docker", "wait", "m1", "m2"]
    assert A.docker_exec("c1", ["python", "-V"]) == ["docker", "exec", "c1", "python", "-V"]


def test_compose_ps_logs_exec_restart() -> None:
    assert A.compose_ps(PROJECT) == [*DC, "ps", "--all", "--format", "json"]
    assert A.compose_logs(PROJECT, "api") == [*DC, "logs", "--no-color", "--timestamps", "api"]
    assert A.compose_logs(PROJECT, "pdf-worker", follow=True, since="10m", tail=100) == [
        *DC,
        "logs",
        "--no-color",
        "--timestamps",
        "--since",
        "10m",
        "--tail",
        "100",
        "--follow",
        "pdf-worker",
    ]
    assert A.compose_exec(PROJECT, "api", ["schedgen", "db", "migrate"]) == [
        *DC,
        "exec",
        "-T",
        "--index",
        "1",
        "api",
        "schedgen",
        "db",
        "migrate",
    ]
    assert A.compose_restart(PROJECT, ["api", "pdf-worker"]) == [*DC, "restart", "api", "pdf-worker"]


def test_compose_down_keeps_volumes_unless_asked() -> None:
    assert A.compose_down(PROJECT) == [*DC, "down", "--remove-orphans"]
    assert A.compose_down(PROJECT, volumes=True) == [*DC, "down", "--remove-orphans", "-v"]


def test_kubectl_apply_diff_rollout() -> None:
    k = Path("/p/deploy/kubernetes")
    assert A.kubectl_apply(KT, k) == [*KC, "apply", "-k", "/p/deploy/kubernetes"]
    assert A.kubectl_apply(KT, k, server_dry_run=True) == [
        *KC,
        "apply",
        "-k",
        "/p/deploy/kubernetes",
        "--dry-run=server",
    ]
    assert A.kubectl_diff(KT, k) == [*KC, "diff", "-k", "/p/deploy/kubernetes"]
    assert A.kubectl_rollout_status(KT, "api", timeout_s=120) == [
        *KC,
        "rollout",
        "status",
        "deployment/api",
        "--timeout=120s",
    ]
    assert A.kubectl_rollout_undo(KT, "pdf-worker") == [*KC, "rollout", "undo", "deployment/pdf-worker"]


def test_kubectl_scale_and_autoscaler_bounds() -> None:
    assert A.kubectl_scale(KT, "api", 3) == [*KC, "scale", "deployment/api", "--replicas=3"]
    assert A.kubectl_patch_hpa(KT, "api", 5, 20) == [
        *KC,
        "patch",
        "hpa",
        "api",
        "--type=merge",
        "-p",
        '{"spec": {"maxReplicas": 20, "minReplicas": 5}}',
    ]
    assert A.kubectl_patch_scaledobject(KT, "pdf-worker", 10, 50) == [
        *KC,
        "patch",
        "scaledobject.keda.sh",
        "pdf-worker",
        "--type=merge",
        "-p",
        '{"spec": {"maxReplicaCount": 50, "minReplicaCount": 10}}',
    ]


def test_kubectl_read_commands() -> None:
    sel = "app.kubernetes.io/name=api"
    assert A.kubectl_get_json(KT, "deployments") == [*KC, "get", "deployments", "-o", "json"]
    assert A.kubectl_get_json(KT, "pods", selector=sel) == [*KC, "get", "pods", "-o", "json", "-l", sel]
    assert A.kubectl_top(KT, sel) == [*KC, "top", "pods", "-l", sel, "--no-headers"]
    assert A.kubectl_logs(KT, sel) == [
        *KC,
        "logs",
        "-l",
        sel,
        "--all-containers",
        "--prefix",
        "--timestamps",
        "--max-log-requests=50",
        "--tail=-1",
    ]
    assert A.kubectl_logs(KT, sel, follow=True, since="10m", tail=100) == [
        *KC,
        "logs",
        "-l",
        sel,
        "--all-containers",
        "--prefix",
        "--timestamps",
        "--max-log-requests=50",
        "--since=10m",
        "--tail=100",
        "--follow",
    ]
    assert A.kubectl_exec(KT, "api", ["schedgen", "db", "migrate"]) == [
        *KC,
        "exec",
        "deployment/api",
        "--",
        "schedgen",
        "db",
        "migrate",
    ]


def test_kubectl_down_never_deletes_claims_unless_asked() -> None:
    sel = "app.kubernetes.io/part-of=schedgen"
    workloads = A.kubectl_delete_workloads(KT, sel)
    assert workloads == [*KC, "delete", A.WORKLOAD_KINDS, "-l", sel, "--ignore-not-found", "--wait=true"]
    assert "pvc" not in A.WORKLOAD_KINDS.split(",") and "persistentvolumeclaims" not in A.WORKLOAD_KINDS
    assert A.kubectl_delete_pvcs(KT, sel) == [*KC, "delete", "pvc", "-l", sel, "--ignore-not-found"]


def test_supervisord_start() -> None:
    conf = Path("/p/.schedgen/run/active/local/supervisord.conf")
    assert A.supervisord_start(conf) == ["supervisord", "--configuration", str(conf)]
    assert A.supervisord_start(conf, "/v/bin/supervisord")[0] == "/v/bin/supervisord"
