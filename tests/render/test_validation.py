"""The validators catch each kind of broken tree (a check that cannot fail proves nothing)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from schedgen_ops.render import validate_tree
from schedgen_ops.render.kube import check_kubernetes
from schedgen_ops.render.validate import check_compose, check_grafana, check_prometheus


@pytest.fixture
def tree(rendered, tmp_path: Path) -> Path:
    out = tmp_path / "tree"
    shutil.copytree(rendered("medium"), out)
    for path in out.glob("*/secrets/*.env"):
        os.chmod(path, 0o600)
    return out


def edit_yaml(path: Path, change: Callable[[dict], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def messages(problems) -> str:
    return "\n".join(map(str, problems))


def test_pristine_tree_is_valid(tree: Path) -> None:
    assert validate_tree(tree) == []


def test_published_database_port_in_production_is_caught(tree: Path) -> None:
    edit_yaml(
        tree / "compose/docker-compose.prod.yml",
        lambda d: d["services"]["postgres"].update(ports=["5432:5432"]),
    )
    assert "service postgres: publishes 5432 (only traefik may in production)" in messages(
        check_compose(tree)
    )


def test_unhealthy_dependency_and_missing_references_are_caught(tree: Path) -> None:
    def change(d: dict) -> None:
        d["services"]["api"]["depends_on"]["redis"] = {"condition": "service_started"}
        d["services"]["api"]["networks"].append("nowhere")
        d["services"]["pdf-worker"]["volumes"] = ["scratch:/scratch"]
        d["services"]["api"]["healthcheck"]["test"] = ["CMD", "curl", "-f", "http://127.0.0.1:8000/healthz"]
        d["services"]["api"]["ports"] = ["8000:8000"]
        del d["services"]["redis"]["cap_drop"]
        d["services"]["traefik"]["user"] = "0:0"
        d["services"]["minio"]["cap_add"] = ["SYS_ADMIN"]
        d["services"]["grafana"]["image"] = "grafana/grafana"

    edit_yaml(tree / "compose/docker-compose.yml", change)
    text = messages(check_compose(tree))
    for expected in (
        "depends_on redis without condition service_healthy",
        "network 'nowhere' is not defined",
        "volume 'scratch' is not defined",
        "our image has neither wget nor curl",
        "service api: replicated service with fixed host ports",
        "service redis: cap_drop ALL missing",
        "image 'grafana/grafana' is not pinned",
    ):
        assert expected in text


def test_schema_violation_is_caught(tree: Path) -> None:
    edit_yaml(
        tree / "compose/docker-compose.yml", lambda d: d["services"]["api"].update(restart_policy="always")
    )
    assert "schema: services/api" in messages(check_compose(tree))


def test_short_worker_grace_is_caught(tree: Path) -> None:
    edit_yaml(
        tree / "compose/docker-compose.yml",
        lambda d: d["services"]["pdf-worker"].update(stop_grace_period="10s"),
    )
    assert "stop_grace_period 10s is not above the job timeout" in messages(check_compose(tree))


def test_eviction_policy_budget_and_traefik_variables_are_caught(tree: Path) -> None:
    redis = tree / "compose/redis/redis.conf"
    redis.write_text(redis.read_text().replace("noeviction", "allkeys-lru"))
    pg = tree / "compose/postgres/postgresql.conf"
    pg.write_text(pg.read_text().replace("max_connections = 223", "max_connections = 100"))
    traefik = tree / "compose/traefik/dynamic.yml"
    traefik.write_text(traefik.read_text().replace("schedule.example.org", "${DOMAIN}"))
    text = messages(validate_tree(tree))
    assert "compose/redis/redis.conf: maxmemory-policy must be noeviction" in text
    assert "compose/postgres/postgresql.conf: max_connections 100 is below the pools' budget 223" in text
    assert "compose/traefik/dynamic.yml: contains ${...}" in text
    assert "changed since it was rendered" in text


def test_secret_leaks_and_loose_modes_are_caught(tree: Path) -> None:
    secret = (tree / "compose/secrets/postgres.env").read_text().splitlines()[0].split("=", 1)[1]
    runbook = tree / "docs/RUNBOOK.md"
    runbook.write_text(runbook.read_text() + f"\npassword: {secret}\n")
    os.chmod(tree / "compose/secrets/redis.env", 0o644)
    text = messages(validate_tree(tree))
    assert "docs/RUNBOOK.md: contains a secret value" in text
    assert "compose/secrets/redis.env: mode 0644" in text


def test_grafana_api_envelope_is_caught(tree: Path) -> None:
    path = tree / "compose/grafana/dashboards/schedgen-overview.json"
    path.write_text(json.dumps({"dashboard": json.loads(path.read_text()), "overwrite": True}))
    assert "file provisioning needs the bare model" in messages(check_grafana(tree))


def test_kubernetes_schema_and_policy_violations_are_caught(tree: Path) -> None:
    path = tree / "kubernetes/api.yaml"
    docs = list(yaml.safe_load_all(path.read_text()))
    container = docs[0]["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"] = container["readinessProbe"]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    docs[0]["spec"]["replica"] = 3
    path.write_text(yaml.safe_dump_all(docs))
    text = messages(check_kubernetes(tree))
    assert "Deployment/api: spec: Additional properties are not allowed ('replica' was unexpected)" in text
    assert "liveness and readiness probes must differ" in text
    assert "allowPrivilegeEscalation must be false" in text


def test_kustomization_missing_resource_is_caught(tree: Path) -> None:
    (tree / "kubernetes/ingress.yaml").unlink()
    assert "resource ingress.yaml does not exist" in messages(check_kubernetes(tree))


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not on PATH")
def test_alert_that_cannot_fire_fails_the_promtool_unit_tests(tree: Path) -> None:
    rules = tree / "compose/prometheus/rules/schedgen.yml"
    rules.write_text(
        rules.read_text().replace(
            "sum(max by (queue) (schedgen_queue_depth)) > 250",
            "sum(max by (queue) (schedgen_queue_depth)) > 1e9",
        )
    )
    text = messages(check_prometheus(tree))
    assert "compose/prometheus/tests: test rules failed" in text
    bad = tree / "kubernetes/prometheus/rules/schedgen.yml"
    bad.write_text(bad.read_text().replace("expr: sum(", "expr: sum((", 1))
    assert "kubernetes/prometheus/rules: check rules failed" in messages(check_prometheus(tree))
