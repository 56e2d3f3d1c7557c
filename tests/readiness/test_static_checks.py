"""Each static check passes on the good hand-written tree and fails on a tree with one thing broken."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from schedgen_ops.ops.readiness import Context, RenderedTree, all_checks, evaluate
from schedgen_ops.ops.readiness.evaluate import run_check
from schedgen_ops.ops.readiness.registry import get
from tests.readiness.fixtures import (
    APP_ENV,
    REDIS_ACL,
    ROLES_SQL,
    RULES,
    SUPERVISORD,
    compose_base,
    compose_prod,
    k8s_manifests,
    write_tree,
)

SECRET = "s3cretpassw0rd"
STATIC_IDS = [c.id for c in all_checks() if c.kind == "static"]


class Tree:
    """Mutable pieces of the good tree; `write` renders them to disk."""

    def __init__(self) -> None:
        self.base = compose_base()
        self.prod = compose_prod()
        self.manifests = k8s_manifests()
        self.files: dict[str, str | None] = {}
        self.profile = "medium"

    def svc(self, name: str) -> dict[str, Any]:
        return self.base["services"][name]

    def kind(self, kind: str, name: str) -> dict[str, Any]:
        return next(m for m in self.manifests if m["kind"] == kind and m["metadata"]["name"] == name)

    def container(self, name: str, kind: str = "Deployment") -> dict[str, Any]:
        return self.kind(kind, name)["spec"]["template"]["spec"]["containers"][0]

    def write(self, root: Path) -> Path:
        return write_tree(
            root,
            profile=self.profile,
            base=self.base,
            prod=self.prod,
            manifests=self.manifests,
            files=self.files,
        )


def _ctx(root: Path, profile: str = "medium") -> Context:
    return Context(
        project=root, tree=RenderedTree(root), profile=profile, secret_values={"DB_PASSWORD": SECRET}
    )


def test_good_tree_passes_every_static_check(tmp_path: Path) -> None:
    root = Tree().write(tmp_path)
    report = evaluate(_ctx(root), only=STATIC_IDS)
    bad = {r.check.id: r.message for r in report.results if r.status != "pass"}
    assert bad == {}
    assert {r.check.id for r in report.results} == set(STATIC_IDS)


def _set(d: dict[str, Any], key: str, value: Any) -> None:
    d[key] = value


Breaker = Callable[[Tree], None]

BREAKERS: dict[str, list[tuple[str, Breaker]]] = {
    "image-pinned": [
        ("compose latest", lambda t: _set(t.svc("redis"), "image", "redis:latest")),
        ("k8s untagged", lambda t: _set(t.container("api"), "image", "ghcr.io/up/schedgen")),
        (
            "operator resource latest",
            lambda t: t.manifests.append(
                {
                    "apiVersion": "postgresql.cnpg.io/v1",
                    "kind": "Cluster",
                    "metadata": {"name": "pg"},
                    "spec": {"instances": 3, "imageName": "ghcr.io/cloudnative-pg/postgresql:latest"},
                }
            ),
        ),
    ],
    "healthchecks": [
        ("compose disabled", lambda t: _set(t.svc("api"), "healthcheck", {"disable": True})),
        ("k8s no readiness", lambda t: t.container("pdf-worker").pop("readinessProbe")),
    ],
    "probes-distinct": [
        (
            "same endpoint",
            lambda t: _set(
                t.container("api"), "livenessProbe", {"httpGet": {"path": "/readyz", "port": 8000}}
            ),
        ),
    ],
    "depends-on-healthy": [
        ("service_started", lambda t: _set(t.svc("api"), "depends_on", ["postgres"])),
    ],
    "resource-limits": [
        ("compose", lambda t: t.svc("api")["deploy"]["resources"].pop("limits")),
        ("k8s", lambda t: t.container("api")["resources"].pop("limits")),
    ],
    "resource-requests": [
        ("compose", lambda t: t.svc("api")["deploy"]["resources"].pop("reservations")),
        ("k8s", lambda t: t.container("api")["resources"]["requests"].pop("cpu")),
    ],
    "restart-policy": [("none", lambda t: t.svc("pdf-worker").pop("restart"))],
    "run-as-non-root": [
        ("compose root", lambda t: _set(t.svc("traefik"), "user", "0:0")),
        ("compose image default", lambda t: t.svc("postgres").pop("user")),
        ("k8s uid 0", lambda t: _set(t.container("api")["securityContext"], "runAsUser", 0)),
    ],
    "read-only-rootfs": [
        ("compose", lambda t: _set(t.svc("api"), "read_only", False)),
        ("k8s", lambda t: t.container("api")["securityContext"].pop("readOnlyRootFilesystem")),
    ],
    "capabilities-dropped": [
        ("compose no drop", lambda t: t.svc("api").pop("cap_drop")),
        ("compose adds SYS_ADMIN", lambda t: _set(t.svc("api"), "cap_add", ["SYS_ADMIN"])),
        ("k8s no drop", lambda t: t.container("api")["securityContext"].pop("capabilities")),
    ],
    "no-privilege-escalation": [
        ("compose privileged", lambda t: _set(t.svc("api"), "privileged", True)),
        ("compose no no-new-privileges", lambda t: t.svc("api").pop("security_opt")),
        (
            "k8s escalation",
            lambda t: _set(t.container("api")["securityContext"], "allowPrivilegeEscalation", True),
        ),
    ],
    "no-host-namespaces": [
        ("compose host network", lambda t: _set(t.svc("api"), "network_mode", "host")),
        (
            "k8s hostPID",
            lambda t: _set(t.kind("Deployment", "api")["spec"]["template"]["spec"], "hostPID", True),
        ),
    ],
    "only-proxy-publishes": [
        ("postgres published in base", lambda t: _set(t.svc("postgres"), "ports", ["5432:5432"])),
        (
            "k8s NodePort",
            lambda t: t.manifests.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "postgres"},
                    "spec": {"type": "NodePort"},
                }
            ),
        ),
    ],
    "no-literal-secrets": [
        (
            "compose password",
            lambda t: t.svc("postgres").setdefault("environment", {}).update(POSTGRES_PASSWORD="hunter2"),
        ),
        (
            "known secret in a config",
            lambda t: t.files.update({"compose/redis/redis.conf": f"requirepass {SECRET}\n"}),
        ),
        (
            "url credentials",
            lambda t: t.svc("api")["environment"].update(SCHEDGEN_REDIS_URL="redis://:pw@redis:6379/0"),
        ),
        (
            "k8s env literal",
            lambda t: _set(t.container("api"), "env", [{"name": "SCHEDGEN_OPS_TOKEN", "value": "abc"}]),
        ),
    ],
    "tls-redirect": [
        (
            "no redirect",
            lambda t: t.files.update(
                {
                    "compose/traefik/traefik.yml": yaml.safe_dump(
                        {
                            "entryPoints": {
                                "web": {"address": ":8080"},
                                "websecure": {"address": ":8443", "http": {"tls": {}}},
                            }
                        }
                    )
                }
            ),
        ),
        ("k8s ingress without tls", lambda t: t.kind("Ingress", "api")["spec"].pop("tls")),
    ],
    "log-rotation": [
        ("unbounded json-file", lambda t: _set(t.svc("api"), "logging", {"driver": "json-file"}))
    ],
    "queue-redis-durable": [
        (
            "local allkeys-lru",
            lambda t: t.files.update(
                {
                    "local/supervisord.conf": SUPERVISORD.replace(
                        "--maxmemory-policy noeviction", "--maxmemory-policy allkeys-lru"
                    )
                }
            ),
        ),
        (
            "allkeys-lru in redis.conf",
            lambda t: t.files.update(
                {"compose/redis/redis.conf": "maxmemory-policy allkeys-lru\nappendonly yes\n"}
            ),
        ),
        ("no AOF", lambda t: t.files.update({"compose/redis/redis.conf": "maxmemory-policy noeviction\n"})),
        (
            "k8s args override",
            lambda t: _set(
                t.container("redis", "StatefulSet"),
                "args",
                ["--maxmemory-policy", "volatile-lru", "--appendonly", "yes"],
            ),
        ),
    ],
    "postgres-connection-budget": [
        (
            "local slots over budget",
            lambda t: t.files.update(
                {"local/supervisord.conf": SUPERVISORD.replace("max_connections=60", "max_connections=30")}
            ),
        ),
        ("too many replicas", lambda t: t.prod["services"]["api"]["deploy"].update(replicas=12)),
        (
            "HPA max over budget",
            lambda t: t.kind("HorizontalPodAutoscaler", "api")["spec"].update(maxReplicas=80),
        ),
    ],
    "worker-stop-grace": [
        (
            "local stopwaitsecs",
            lambda t: t.files.update(
                {"local/supervisord.conf": SUPERVISORD.replace("stopwaitsecs=360", "stopwaitsecs=30")}
            ),
        ),
        ("compose default 10s", lambda t: t.svc("pdf-worker").pop("stop_grace_period")),
        (
            "k8s 30s",
            lambda t: t.kind("Deployment", "pdf-worker")["spec"]["template"]["spec"].update(
                terminationGracePeriodSeconds=30
            ),
        ),
    ],
    "min-replicas": [
        ("compose 1 worker", lambda t: t.prod["services"]["pdf-worker"]["deploy"].update(replicas=1)),
        ("k8s HPA floor 1", lambda t: t.kind("HorizontalPodAutoscaler", "api")["spec"].update(minReplicas=1)),
    ],
    "autoscaling-bounds": [
        ("min == max", lambda t: t.kind("ScaledObject", "pdf-worker")["spec"].update(maxReplicaCount=2)),
        ("no triggers", lambda t: t.kind("ScaledObject", "pdf-worker")["spec"].pop("triggers")),
        (
            "HPA target missing",
            lambda t: t.kind("HorizontalPodAutoscaler", "api")["spec"]["scaleTargetRef"].update(name="apii"),
        ),
    ],
    "pod-disruption-budgets": [
        ("missing", lambda t: t.manifests.remove(t.kind("PodDisruptionBudget", "api"))),
        (
            "blocks drains",
            lambda t: _set(
                t.kind("PodDisruptionBudget", "api"),
                "spec",
                {"minAvailable": 2, "selector": {"matchLabels": {"app": "api"}}},
            ),
        ),
    ],
    "network-policies": [
        ("no default deny", lambda t: t.manifests.remove(t.kind("NetworkPolicy", "default-deny"))),
        ("workload without allow", lambda t: t.manifests.remove(t.kind("NetworkPolicy", "allow-redis"))),
    ],
    "alert-rules": [
        (
            "no rules",
            lambda t: t.files.update(
                {"compose/prometheus/rules/schedgen.yml": yaml.safe_dump({"groups": []})}
            ),
        ),
        (
            "promtool rejects",
            lambda t: t.files.update(
                {
                    "compose/prometheus/rules/schedgen.yml": yaml.safe_dump(
                        {
                            "groups": [
                                {
                                    "name": "g",
                                    "rules": [{**RULES["groups"][0]["rules"][0], "expr": "up{job= == 0"}],
                                }
                            ]
                        }
                    )
                }
            ),
        ),
    ],
    "alert-metrics-exposed": [
        (
            "unknown series",
            lambda t: t.files.update(
                {
                    "compose/prometheus/rules/schedgen.yml": yaml.safe_dump(
                        {
                            "groups": [
                                {
                                    "name": "g",
                                    "rules": [
                                        {
                                            **RULES["groups"][0]["rules"][0],
                                            "expr": "absent(schedgen_made_up_timestamp_seconds)",
                                        }
                                    ],
                                }
                            ]
                        }
                    )
                }
            ),
        ),
    ],
    "prometheus-wiring": [
        (
            "rules not loaded",
            lambda t: t.files.update(
                {
                    "compose/prometheus/rules/extra.yml": yaml.safe_dump(RULES),
                    "compose/prometheus/prometheus.yml": yaml.safe_dump(
                        {
                            "rule_files": ["/etc/prometheus/rules/schedgen.yml"],
                            "scrape_configs": [{"job_name": "api"}],
                            "alerting": {"alertmanagers": [{}]},
                        }
                    ),
                }
            ),
        ),
    ],
    "backup-pitr": [
        (
            "local postgres not archiving",
            lambda t: t.files.update(
                {"local/supervisord.conf": SUPERVISORD.replace(" -c archive_mode=on", "")}
            ),
        ),
    ],
    "backup-schedule": [
        ("no timer", lambda t: t.files.update({"systemd/schedgen-backup.timer": "[Timer]\n"})),
        ("k8s bad schedule", lambda t: t.kind("CronJob", "backup")["spec"].update(schedule="daily")),
    ],
    "rate-limits": [
        (
            "no traefik limit",
            lambda t: t.files.update(
                {
                    "compose/traefik/dynamic.yml": yaml.safe_dump(
                        {"http": {"routers": {"api": {"rule": "Host(`x`)", "service": "api"}}}}
                    )
                }
            ),
        ),
        ("bad app limit", lambda t: t.svc("api")["environment"].update(SCHEDGEN_RATE_UPLOADS="lots")),
        ("k8s middleware unattached", lambda t: t.kind("Ingress", "api")["metadata"].pop("annotations")),
    ],
    "postgres-app-role": [
        (
            "compose app is the superuser",
            lambda t: t.files.update(
                {"compose/secrets/app.env": APP_ENV.replace("schedgen_app:", "postgres:")}
            ),
        ),
        (
            "k8s script lets the app create roles",
            lambda t: t.files.update(
                {
                    "kubernetes/postgres/roles.sql": ROLES_SQL.replace(
                        "NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'app'",
                        "CREATEROLE NOREPLICATION NOBYPASSRLS', :'app'",
                    )
                }
            ),
        ),
        ("compose script never applied", lambda t: t.svc("postgres-init").pop("volumes")),
        (
            "no roles script",
            lambda t: t.files.update({"local/roles.sql": None}) or _drop(t, "local/roles.sql"),
        ),
        (
            "local superuser shares the app's password",
            lambda t: t.files.update({"local/secrets/postgres-init.env": f"PGPASSWORD={SECRET}\n"}),
        ),
    ],
    "postgres-ops-roles": [
        (
            "k8s backups as the app",
            lambda t: t.files.update({"kubernetes/secrets/backup.env": APP_ENV}),
        ),
        (
            "exporter without pg_monitor",
            lambda t: (
                t.files.update(
                    {
                        "compose/postgres/roles.sql": ROLES_SQL.replace(
                            "GRANT pg_monitor", "GRANT pg_read_all_data"
                        ),
                        "compose/secrets/exporter.env": "DATA_SOURCE_NAME=postgresql://schedgen_exporter:x@postgres/db\n",
                    }
                )
                or t.base["services"].update(
                    {
                        "postgres-exporter": {
                            **t.svc("api"),
                            "image": "pe:1",
                            "env_file": ["secrets/exporter.env"],
                        }
                    }
                )
            ),
        ),
    ],
    "redis-acl-users": [
        (
            "compose one requirepass",
            lambda t: t.files.update(
                {"compose/redis/redis.conf": "maxmemory-policy noeviction\nappendonly yes\nrequirepass x\n"}
            ),
        ),
        (
            "local app user may FLUSHALL",
            lambda t: t.files.update(
                {"local/redis-acl.conf": REDIS_ACL.replace("+@all -@dangerous +info", "+@all")}
            ),
        ),
        (
            "k8s service logs in as default",
            lambda t: t.files.update(
                {"kubernetes/secrets/app.env": APP_ENV.replace("redis://app:", "redis://:")}
            ),
        ),
        (
            "default user without a password",
            lambda t: t.files.update(
                {
                    "local/redis-acl.conf": REDIS_ACL.replace(
                        "user default reset on #7f5d", "user default on nopass"
                    )
                }
            ),
        ),
    ],
    "minio-app-user": [
        (
            "app holds the root key",
            lambda t: t.files.update({"compose/secrets/minio.env": "MINIO_ROOT_USER=sgappkey\n"}),
        ),
        (
            "no app user made",
            lambda t: _set(t.svc("minio-init"), "command", ["mc mb --ignore-existing root/b"]),
        ),
    ],
    "webhook-urls-secret": [
        (
            "alertmanager url literal",
            lambda t: t.files.update(
                {
                    "compose/alertmanager/alertmanager.yml": yaml.safe_dump(
                        {
                            "receivers": [
                                {"name": "hook", "webhook_configs": [{"url": "https://hooks.example/T0/B1"}]}
                            ]
                        }
                    )
                }
            ),
        ),
        (
            "unit sets the URL",
            lambda t: t.files.update(
                {
                    "systemd/schedgen-backup.service": "[Service]\n"
                    'Environment="SCHEDGEN_BACKUP_WEBHOOK_URL=https://hooks.example/T0/B1"\n'
                }
            ),
        ),
    ],
}


def _drop(tree: Tree, rel: str) -> None:
    """Leave ``rel`` out of the written tree (write_tree skips None)."""
    tree.files[rel] = None


def test_every_static_check_has_a_failing_fixture() -> None:
    assert sorted(BREAKERS) == sorted(STATIC_IDS)


CASES = [(check_id, label, fn) for check_id, items in BREAKERS.items() for label, fn in items]


@pytest.mark.parametrize(
    ("check_id", "label", "breaker"), CASES, ids=[f"{c}-{label}" for c, label, _ in CASES]
)
def test_check_fails_on_broken_fixture(tmp_path: Path, check_id: str, label: str, breaker: Breaker) -> None:
    tree = Tree()
    breaker(tree)
    root = tree.write(tmp_path)
    result = run_check(get(check_id), _ctx(root))
    assert result.status == "fail", (result.status, result.message)
    bad = [f for f in result.findings if not f.ok]
    assert bad and all(f.evidence.file for f in bad)


def test_small_profile_skips_min_replicas(tmp_path: Path) -> None:
    tree = Tree()
    tree.prod["services"]["pdf-worker"]["deploy"]["replicas"] = 1
    result = run_check(get("min-replicas"), _ctx(tree.write(tmp_path), profile="small"))
    assert result.status == "skip"


def test_prod_overlay_reset_unpublishes_ports(tmp_path: Path) -> None:
    """`ports: !reset []` in the overlay removes base ports (the bug the old overlay had)."""
    tree = Tree()
    tree.svc("postgres")["ports"] = ["5432:5432"]
    root = tree.write(tmp_path)
    prod = (root / "compose/docker-compose.prod.yml").read_text()
    prod = prod.replace("services:\n", "services:\n  postgres:\n    ports: !reset []\n", 1)
    (root / "compose/docker-compose.prod.yml").write_text(prod)
    assert run_check(get("only-proxy-publishes"), _ctx(root)).status == "pass"


def test_evidence_names_the_overlay_when_it_sets_the_value(tmp_path: Path) -> None:
    tree = Tree()
    tree.prod["services"]["pdf-worker"]["deploy"]["replicas"] = 1
    result = run_check(get("min-replicas"), _ctx(tree.write(tmp_path)))
    bad = [f for f in result.findings if not f.ok]
    assert bad[0].evidence.file == "compose/docker-compose.prod.yml"
    assert bad[0].evidence.path == "services.pdf-worker.deploy.replicas"
    assert bad[0].evidence.value == 1


def test_budget_counts_the_scale_ceiling_on_compose(tmp_path: Path) -> None:
    """`schedgen scale` may reach max_replicas, so the compose budget uses it, not the initial replicas."""
    from types import SimpleNamespace

    ctx = _ctx(Tree().write(tmp_path))
    assert run_check(get("postgres-connection-budget"), ctx).status == "pass"
    ctx.config = SimpleNamespace(api=SimpleNamespace(max_replicas=12), worker=SimpleNamespace(max_replicas=2))
    result = run_check(get("postgres-connection-budget"), ctx)
    assert result.status == "fail" and "api 12x10" in result.message


def test_one_shot_init_services_need_no_healthcheck(tmp_path: Path) -> None:
    """An init job others wait for (service_completed_successfully) runs to completion: no healthcheck."""
    tree = Tree()
    init = {k: v for k, v in tree.svc("api").items() if k not in ("healthcheck", "depends_on", "environment")}
    tree.base["services"]["bucket-init"] = {**init, "restart": "on-failure"}
    tree.svc("api")["depends_on"]["bucket-init"] = {"condition": "service_completed_successfully"}
    ctx = _ctx(tree.write(tmp_path))
    assert run_check(get("healthchecks"), ctx).status == "pass"
    # The same service that nothing waits for is a long-running service without a healthcheck.
    tree.svc("api")["depends_on"].pop("bucket-init")
    result = run_check(get("healthchecks"), _ctx(tree.write(tmp_path)))
    assert result.status == "fail" and "bucket-init" in result.message


def test_a_resource_can_exempt_itself_with_a_reason(tmp_path: Path) -> None:
    """Polaris-style: the label/annotation names the check and gives the reason, shown with the finding."""
    tree = Tree()
    tree.svc("traefik")["user"] = "0:0"
    tree.svc("traefik")["labels"] = {
        "io.schedgen.checklist.exempt.run-as-non-root": "binds :80 on old kernels"
    }
    tree.container("api")["securityContext"]["runAsUser"] = 0
    tree.kind("Deployment", "api")["metadata"]["annotations"] = {
        "checklist.schedgen.io/exempt-run-as-non-root": "legacy image, tracked in #12"
    }
    result = run_check(get("run-as-non-root"), _ctx(tree.write(tmp_path / "a")))
    assert result.status == "pass" and "2 exempt" in result.message
    assert {f.exempt for f in result.findings if f.exempt} == {
        "binds :80 on old kernels",
        "legacy image, tracked in #12",
    }
    # The exemption names one check: it does not exempt the same service from another check.
    tree.svc("traefik")["privileged"] = True
    assert run_check(get("no-privilege-escalation"), _ctx(tree.write(tmp_path / "b"))).status == "fail"
    # A blank reason exempts nothing.
    tree.svc("traefik")["labels"] = {"io.schedgen.checklist.exempt.run-as-non-root": " "}
    assert run_check(get("run-as-non-root"), _ctx(tree.write(tmp_path / "c"))).status == "fail"
