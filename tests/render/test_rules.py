"""Each rule of the stack asserted on the rendered files (merged base + prod compose model)."""

from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from renderkit import PROFILES, SECRETS, config_for

from schedgen_ops.render.validate import merge_compose
from tests.conftest import shared_path

OUR_IMAGE = "schedgen/service:"
# What each image's healthcheck may call: tools those images actually ship.
HEALTH_TOOLS = {
    "schedgen/service": "python",
    "postgres": "pg_isready",
    "schedgen/postgres-pgbackrest": "pg_isready",  # FROM postgres (backup.pitr)
    "redis": "redis-cli",
    "traefik": "traefik",
    "minio/minio": "mc",
    "prom/prometheus": "wget",
    "prom/alertmanager": "wget",
    "grafana/grafana": "wget",
    "quay.io/prometheuscommunity/postgres-exporter": "wget",
    "oliver006/redis_exporter": "wget",
}


def compose(out: Path, overlay: str | None = "prod") -> dict[str, Any]:
    base = yaml.safe_load((out / "compose/docker-compose.yml").read_text())
    if overlay is None:
        return base
    return merge_compose(base, yaml.safe_load((out / f"compose/docker-compose.{overlay}.yml").read_text()))


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_only_traefik_publishes_ports_in_production(rendered, profile: str) -> None:
    model = compose(rendered(profile))
    published = {name: svc["ports"] for name, svc in model["services"].items() if svc.get("ports")}
    assert list(published) == ["traefik"]
    assert sorted(str(p["published"]) for p in published["traefik"]) == ["443", "80"]
    assert not any(svc.get("ports") for svc in compose(rendered(profile), None)["services"].values())


def test_dev_overlay_binds_loopback_only(rendered, profile: str) -> None:
    model = compose(rendered(profile), "dev")
    ports = [p for svc in model["services"].values() for p in svc.get("ports", [])]
    assert ports and all(str(p).startswith("127.0.0.1:") for p in ports)
    for name in ("api", "pdf-worker"):
        assert "ports" not in model["services"][name] and "container_name" not in model["services"][name]


def test_data_services_sit_on_the_internal_network(rendered, profile: str) -> None:
    model = compose(rendered(profile))
    assert model["networks"]["backend"]["internal"] is True
    for name in ("postgres", "redis", "pdf-worker", *(["minio"] if "minio" in model["services"] else [])):
        assert model["services"][name]["networks"] == ["backend"], name


def test_images_pinned_and_ours_tagged_with_the_version(rendered, profile: str) -> None:
    from schedgen_ops import __version__

    for name, svc in compose(rendered(profile))["services"].items():
        image = svc["image"]
        assert re.search(r":[\w.\-]+$", image) and not image.endswith(":latest"), name
        if image.startswith("schedgen/") and name == "postgres":  # backup.pitr: tagged by its content
            assert re.fullmatch(r"schedgen/postgres-pgbackrest:[0-9a-f]{16}", image), image
        elif image.startswith("schedgen/"):
            assert image == f"schedgen/service:{__version__}"


def one_shot(svc: dict[str, Any]) -> bool:
    return (svc.get("labels") or {}).get("io.schedgen.one-shot") == "true"


def test_healthchecks_use_tools_the_images_have(rendered, profile: str) -> None:
    for name, svc in compose(rendered(profile))["services"].items():
        if one_shot(svc):
            assert "healthcheck" not in svc and svc["restart"] == "on-failure"
            continue
        repo = svc["image"].rsplit(":", 1)[0]
        test = svc["healthcheck"]["test"]
        command = test[1] if test[0] in ("CMD", "CMD-SHELL") else test[0]
        assert command.split()[0] == HEALTH_TOOLS[repo], f"{name}: {test}"
        assert not re.search(r"\b(curl|wget)\b", " ".join(test)) or not repo.startswith("schedgen/")


def test_depends_on_waits_for_health_and_every_service_restarts(rendered, profile: str) -> None:
    services = compose(rendered(profile))["services"]
    for name, svc in services.items():
        assert svc["restart"] == ("on-failure" if one_shot(svc) else "always"), name
        for dep, cond in svc.get("depends_on", {}).items():
            wanted = "service_completed_successfully" if one_shot(services[dep]) else "service_healthy"
            assert dep in services and cond == {"condition": wanted}, (name, dep)
    assert set(services["api"]["depends_on"]) >= {"postgres", "redis"}
    if config_for(profile).minio.enabled:  # the bucket exists before the api starts
        assert services["api"]["depends_on"]["minio-init"] == {"condition": "service_completed_successfully"}
        assert services["minio-init"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
        script = services["minio-init"]["command"][0]
        assert f"mc mb --ignore-existing root/{config_for(profile).minio.bucket}" in script
        # The service gets a user limited to the bucket; the root credentials stay with minio-init.
        assert "mc admin policy attach root schedgen-app" in script
        assert f'"Resource":["arn:aws:s3:::{config_for(profile).minio.bucket}/*"]' in script


def test_resources_come_from_the_profile(rendered, profile: str) -> None:
    config = config_for(profile)
    services = compose(rendered(profile))["services"]
    api = services["api"]["deploy"]
    assert api["replicas"] == config.api.replicas
    assert api["resources"]["limits"] == {"cpus": str(config.api.cpus), "memory": f"{config.api.memory_mb}M"}
    assert services["pdf-worker"]["deploy"]["replicas"] == config.worker.replicas
    redis_limit = services["redis"]["deploy"]["resources"]["limits"]["memory"]
    assert redis_limit == f"{config.redis.memory_mb}M"


def test_hardening_and_log_rotation(rendered, profile: str) -> None:
    for name, svc in compose(rendered(profile))["services"].items():
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"], name
        assert svc["read_only"] is True, name
        assert svc["logging"]["options"]["max-size"] == "10m", name
        if name == "volume-init":  # the one root process: CHOWN only, no network, exits
            assert svc["user"] == "0:0" and svc["cap_add"] == ["CHOWN"] and svc["network_mode"] == "none"
            assert one_shot(svc)
        else:
            assert not svc["user"].startswith("0:") and "cap_add" not in svc, name
        assert "container_name" not in svc


def test_worker_stop_grace_exceeds_job_timeout(rendered, profile: str) -> None:
    worker = compose(rendered(profile))["services"]["pdf-worker"]
    timeout = int(worker["environment"]["SCHEDGEN_JOB_TIMEOUT_S"])
    assert int(worker["stop_grace_period"].rstrip("s")) > timeout
    k8s = next(iter(yaml.safe_load_all((rendered(profile) / "kubernetes/worker.yaml").read_text())))
    assert k8s["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > timeout


def test_worker_container_healthcheck_probes_its_metrics_port(rendered, profile: str) -> None:
    """The image's HEALTHCHECK defaults to the api port: compose points workers at their metrics port."""
    services = compose(rendered(profile))["services"]
    worker = services["pdf-worker"]
    port = config_for(profile).worker.metrics_port
    assert worker["environment"]["SCHEDGEN_HEALTHCHECK_URL"] == f"http://127.0.0.1:{port}/metrics"
    assert worker["expose"] == [str(port)]
    # The compose check is the image's own command (no URL argument), so it reads that same variable.
    assert worker["healthcheck"]["test"] == ["CMD", "python", "-m", "schedgen_ops.service.healthcheck"]
    assert "SCHEDGEN_HEALTHCHECK_URL" not in services["api"]["environment"]


def test_redis_is_a_queue_redis(rendered, profile: str) -> None:
    conf = (rendered(profile) / "compose/redis/redis.conf").read_text()
    config = config_for(profile)
    assert re.search(r"^maxmemory-policy noeviction$", conf, re.M)
    assert re.search(r"^appendonly yes$", conf, re.M) and re.search(r"^appendfsync everysec$", conf, re.M)
    assert re.search(rf"^maxmemory {config.redis.maxmemory_mb}mb$", conf, re.M)
    # Backups' `redis-cli --rdb` starts at once (no 5 s repl-diskless-sync-delay); needs Redis 7.0+.
    assert re.search(r"^repl-diskless-sync-max-replicas 1$", conf, re.M)
    tag = re.search(r":(\d+)\.(\d+)", config.redis.image)
    assert tag is not None and (int(tag.group(1)), int(tag.group(2))) >= (7, 0), config.redis.image
    # ACL users with password hashes instead of one requirepass (schedgen_ops.config.roles).
    assert not re.search(r"^requirepass", conf, re.M)
    users = {line.split()[1] for line in conf.splitlines() if line.startswith("user ")}
    assert set(users) == {"default", "app", "exporter", "admin"}
    assert f"#{hashlib.sha256(SECRETS['REDIS_PASSWORD'].encode()).hexdigest()}" in conf
    redis = compose(rendered(profile))["services"]["redis"]
    assert redis["command"] == ["redis-server", "/usr/local/etc/redis/redis.conf"]


def test_postgres_connection_budget(rendered, profile: str) -> None:
    config = config_for(profile)
    conf = (rendered(profile) / "compose/postgres/postgresql.conf").read_text()
    max_conn = int(re.search(r"^max_connections = (\d+)$", conf, re.M).group(1))  # type: ignore[union-attr]
    api, worker = config.role_settings("api"), config.role_settings("worker")
    pools = (
        config.api.max_replicas * api.api_workers * api.db_pool_max
        + config.worker.max_replicas * worker.worker_processes * worker.db_pool_max
    )
    assert max_conn == pools + config.postgres.reserve_connections
    assert f"shared_buffers = {config.postgres.memory_mb // 4}MB" in conf


def test_no_secret_outside_the_secret_files(rendered, profile: str) -> None:
    out = rendered(profile)
    secret_files = sorted(out.glob("*/secrets/*.env"))
    assert secret_files
    for path in secret_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in (p for p in out.rglob("*") if p.is_file() and "secrets" not in p.parts):
        text = path.read_text()
        for value in SECRETS.values():
            assert value not in text, f"{path.relative_to(out)} contains a secret"
    app_env = (out / "compose/secrets/app.env").read_text()
    assert f"schedgen_app:{SECRETS['POSTGRES_APP_PASSWORD']}@postgres:5432/" in app_env
    assert f"redis://app:{SECRETS['REDIS_PASSWORD']}@redis:6379/0" in app_env
    # The app's file holds only its own credentials: no superuser, owner, exporter or admin password.
    for name in ("POSTGRES_SUPERUSER_PASSWORD", "POSTGRES_PASSWORD", "POSTGRES_EXPORTER_PASSWORD"):
        assert SECRETS[name] not in app_env, name
    for name in ("REDIS_ADMIN_PASSWORD", "REDIS_BACKUP_PASSWORD", "MINIO_ROOT_PASSWORD"):
        assert SECRETS[name] not in app_env, name


def test_traefik_files_are_fully_rendered(rendered, profile: str) -> None:
    out = rendered(profile)
    static = yaml.safe_load((out / "compose/traefik/traefik.yml").read_text())
    dynamic = yaml.safe_load((out / "compose/traefik/dynamic.yml").read_text())
    for path in (out / "compose/traefik").iterdir():
        assert "${" not in path.read_text()
    redirect = static["entryPoints"]["web"]["http"]["redirections"]["entryPoint"]
    assert redirect == {"to": "websecure", "scheme": "https", "permanent": True}
    assert static["certificatesResolvers"]["letsencrypt"]["acme"]["httpChallenge"]
    assert static["api"] == {"dashboard": False, "insecure": False}
    headers = dynamic["http"]["middlewares"]["security-headers"]["headers"]
    assert "default-src 'self'" in headers["contentSecurityPolicy"] and headers["stsSeconds"] >= 31536000
    assert dynamic["http"]["middlewares"]["edge-ratelimit"]["rateLimit"]["average"] > 0
    domain = config_for(profile).domain
    assert (
        dynamic["http"]["routers"]["api"]["rule"]
        == f"Host(`{domain}`) && (PathPrefix(`/api/`) || Path(`/healthz`) || Path(`/`)"
        " || PathPrefix(`/static/`) || PathPrefix(`/cal/`))"
    )


def test_prometheus_discovers_every_replica(rendered) -> None:
    out = rendered("medium")
    compose_prom = yaml.safe_load((out / "compose/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in compose_prom["scrape_configs"]}
    assert jobs["worker"]["dns_sd_configs"][0] == {
        "names": ["pdf-worker"],
        "type": "A",
        "port": 9100,
        "refresh_interval": "30s",
    }
    k8s_prom = yaml.safe_load((out / "kubernetes/prometheus/prometheus.yml").read_text())
    k8s_jobs = {j["job_name"]: j for j in k8s_prom["scrape_configs"]}
    assert k8s_jobs["api"]["kubernetes_sd_configs"][0]["role"] == "pod"
    rules = yaml.safe_load((out / "compose/prometheus/rules/schedgen.yml").read_text())
    names = {r["alert"] for r in rules["groups"][0]["rules"]}
    assert names == {
        "ApiDown",
        "ApiHigh5xxRatio",
        "ApiHighLatencyP95",
        "QueueBacklog",
        "OldestQueuedJobTooOld",
        "QueuedJobNotWaitingInRedis",
        "JobFailureRatioHigh",
        "NoWorkers",
        "SlowParses",
        "PostgresConnectionsHigh",
        "RedisMemoryHigh",
        "BackupTooOld",
    }
    backlog = next(r for r in rules["groups"][0]["rules"] if r["alert"] == "QueueBacklog")
    assert backlog["expr"].endswith(f"> {config_for('medium').alerts.queue_backlog}")


def test_grafana_dashboards_are_in_file_provisioning_format(rendered) -> None:
    out = rendered("small")
    dash = json.loads((out / "compose/grafana/dashboards/schedgen-overview.json").read_text())
    assert "dashboard" not in dash and dash["uid"] and dash["panels"]
    provider = yaml.safe_load((out / "compose/grafana/provisioning/dashboards/schedgen.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    mounts = compose(out)["services"]["grafana"]["volumes"]
    assert "./grafana/dashboards:/etc/grafana/dashboards:ro" in mounts


def test_kubernetes_objects(rendered) -> None:
    large = rendered("large")
    docs = {
        f"{d['kind']}/{d['metadata']['name']}": d
        for path in (large / "kubernetes").glob("*.yaml")
        if path.name != "kustomization.yaml"
        for d in yaml.safe_load_all(path.read_text())
        if d
    }
    assert docs["HorizontalPodAutoscaler/api"]["spec"]["maxReplicas"] == 20
    # The autoscalers own the replica counts; a fixed field would be reset by every apply.
    assert (
        "replicas" not in docs["Deployment/api"]["spec"]
        and "replicas" not in docs["Deployment/pdf-worker"]["spec"]
    )
    scaled = docs["ScaledObject/pdf-worker"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (10, 50)
    assert {t["metadata"]["listName"] for t in scaled["triggers"]} == {
        "rq:queue:high",
        "rq:queue:default",
        "rq:queue:low",
    }
    assert docs["Cluster/postgres"]["spec"]["instances"] == 3
    assert docs["Cluster/postgres"]["spec"]["postgresql"]["parameters"]["max_connections"] == "415"
    assert (
        docs["RedisSentinel/redis-sentinel"]["spec"]["redisSentinelConfig"]["redisReplicationName"] == "redis"
    )
    assert docs["Tenant/minio"]["spec"]["pools"][0]["servers"] == 4
    refs = docs["Ingress/api"]["metadata"]["annotations"]["traefik.ingress.kubernetes.io/router.middlewares"]
    for ref in refs.split(","):
        name = ref.split("@")[0].removeprefix("schedgen-")
        assert f"Middleware/{name}" in docs, ref
    csp = docs["Middleware/security-headers"]["spec"]["headers"]["contentSecurityPolicy"]
    assert csp == config_for("large").traefik.content_security_policy
    assert docs["NetworkPolicy/default-deny"]["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress", "Egress"],
    }
    api = docs["Deployment/api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["securityContext"]["runAsNonRoot"] and api["securityContext"]["readOnlyRootFilesystem"]
    assert docs["CronJob/backup"]["spec"]["schedule"] == config_for("large").backup.cron
    prom_volumes = docs["Deployment/prometheus"]["spec"]["template"]["spec"]["volumes"]
    items = next(v for v in prom_volumes if v["name"] == "config")["configMap"]["items"]
    assert {"key": "schedgen.yml", "path": "rules/schedgen.yml"} in items  # prometheus.yml reads rules/*.yml
    assert "Deployment/grafana" in docs and "Deployment/alertmanager" in docs
    small = rendered("small")
    small_kinds = {
        d["kind"]
        for p in (small / "kubernetes").glob("*.yaml")
        for d in yaml.safe_load_all(p.read_text())
        if d and "kind" in d
    }
    assert {"StatefulSet", "ScaledObject", "PodDisruptionBudget"} <= small_kinds
    assert not small_kinds & {"Cluster", "RedisSentinel", "Tenant"}
    kustomization = yaml.safe_load((large / "kubernetes/kustomization.yaml").read_text())
    generated = {g["name"]: g for g in kustomization["secretGenerator"]}
    assert generated["app-secrets"]["envs"] == ["secrets/app.env"]


def test_one_backup_schedule_everywhere(rendered) -> None:
    out = rendered("small")
    config = config_for("small")
    timer = (out / "systemd/schedgen-backup.timer").read_text()
    assert f"OnCalendar={config.backup.on_calendar}" in timer
    cron = (out / "systemd/schedgen-backup.cron").read_text()
    assert f"\n{config.backup.cron} root " in cron
    service = (out / "systemd/schedgen-backup.service").read_text()
    assert "backup && " in service and "backup verify" in service and "backup prune" in service
    # Compose has no in-stack backup loop (no matching pg_dump in our image): the host timer backs it up.
    assert "backup" not in compose(out)["services"]


def test_compose_files_pass_the_shared_compose_spec_schema(rendered, profile: str) -> None:
    """An independent second schema check with ../shared/schemas/compose-spec.json."""
    schema = json.loads(shared_path("schemas", "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)  # it declares draft-07 (without the trailing #)
    for name in ("docker-compose.yml", "docker-compose.prod.yml", "docker-compose.dev.yml"):
        doc = yaml.safe_load((rendered(profile) / "compose" / name).read_text())
        errors = [e.message for e in validator.iter_errors(doc)]
        assert errors == [], (name, errors[:3])


ALERT_HOOK = "https://hooks.example.org/services/T0/B1/alert-key-0123456789"
BACKUP_HOOK = "https://hooks.example.org/services/T0/B2/backup-key-0123456789%2F?channel=ops"


def test_webhooks_are_secrets_read_from_files_never_rendered(tmp_path: Path) -> None:
    """ALERT_WEBHOOK_URL / BACKUP_WEBHOOK_URL live in secrets.env: Alertmanager reads a url_file, the
    CronJob an env Secret; no rendered file outside */secrets/ holds either URL."""
    from renderkit import PROJECT

    from schedgen_ops.render import render_tree, validate_tree

    secrets = {**SECRETS, "ALERT_WEBHOOK_URL": ALERT_HOOK, "BACKUP_WEBHOOK_URL": BACKUP_HOOK}
    render_tree(config_for("large"), secrets, "all", tmp_path, project_dir=PROJECT)
    assert validate_tree(tmp_path) == []
    for path in (p for p in tmp_path.rglob("*") if p.is_file() and "secrets" not in p.parts):
        text = path.read_text()
        assert ALERT_HOOK not in text and BACKUP_HOOK not in text, path
        assert "alert-key" not in text and "backup-key" not in text, path
    compose_am = yaml.safe_load((tmp_path / "compose/alertmanager/alertmanager.yml").read_text())
    assert compose_am["route"]["receiver"] == "webhook"
    assert compose_am["receivers"] == [
        {"name": "webhook", "webhook_configs": [{"url_file": "/tmp/webhook-url", "send_resolved": True}]}
    ]
    assert (tmp_path / "compose/secrets/alertmanager.env").read_text() == f"ALERT_WEBHOOK_URL={ALERT_HOOK}\n"
    am = compose(tmp_path)["services"]["alertmanager"]
    assert am["env_file"] == ["secrets/alertmanager.env"] and "/tmp" in am["tmpfs"]
    assert "/tmp/webhook-url" in am["command"][0] and "unset ALERT_WEBHOOK_URL" in am["command"][0]
    k8s_am = yaml.safe_load((tmp_path / "kubernetes/alertmanager/alertmanager.yml").read_text())
    assert k8s_am["receivers"][0]["webhook_configs"][0] == {
        "url_file": "/etc/alertmanager-webhook/url",
        "send_resolved": True,
    }
    assert (tmp_path / "kubernetes/secrets/alertmanager.env").read_text() == f"url={ALERT_HOOK}\n"
    backup_env = (tmp_path / "kubernetes/secrets/backup.env").read_text()
    assert f"SCHEDGEN_BACKUP_WEBHOOK_URL={BACKUP_HOOK}\n" in backup_env
    cronjob = next(
        d
        for d in yaml.safe_load_all((tmp_path / "kubernetes/backup.yaml").read_text())
        if d["kind"] == "CronJob"
    )
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert {"secretRef": {"name": "backup-secrets"}} in container["envFrom"] and "env" not in container
    for unit in ("schedgen-backup.service", "schedgen-backup.cron"):
        text = (tmp_path / "systemd" / unit).read_text()
        assert "SCHEDGEN_BACKUP_WEBHOOK_URL=" not in text and "secrets.env" in text, unit


def test_without_webhooks_alerts_stay_in_alertmanager(rendered) -> None:
    am = yaml.safe_load((rendered("small") / "compose/alertmanager/alertmanager.yml").read_text())
    # Quoted: a bare `null` would leave the root route without its receiver (Alertmanager refuses that).
    assert am["route"]["receiver"] == "null" and am["receivers"] == [{"name": "null"}]
    assert not (rendered("small") / "compose/secrets/alertmanager.env").exists()
    assert "env_file" not in compose(rendered("small"))["services"]["alertmanager"]


def test_monitoring_probes_are_distinct_liveness_tolerant_readiness_strict(rendered) -> None:
    """Exporters and grafana: liveness checks only the process (tolerant), readiness the work (strict)."""
    docs = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((rendered("large") / "kubernetes/monitoring.yaml").read_text())
        if d and d["kind"] == "Deployment"
    }
    expected = {
        "postgres-exporter": (
            {"tcpSocket": {"port": "http"}},
            {"httpGet": {"path": "/metrics", "port": "http"}},
        ),
        "redis-exporter": (
            {"httpGet": {"path": "/health", "port": "http"}},
            {"httpGet": {"path": "/metrics", "port": "http"}},
        ),
        "grafana": (
            {"httpGet": {"path": "/healthz", "port": "http"}},
            {"httpGet": {"path": "/api/health", "port": "http"}},
        ),
    }
    for name, (live_target, ready_target) in expected.items():
        container = docs[name]["spec"]["template"]["spec"]["containers"][0]
        live, ready = container["livenessProbe"], container["readinessProbe"]
        assert {k: v for k, v in live.items() if k in ("tcpSocket", "httpGet")} == live_target, name
        assert {k: v for k, v in ready.items() if k in ("tcpSocket", "httpGet")} == ready_target, name
        # Readiness reacts sooner; liveness waits longer and tolerates more failures before a restart.
        assert ready["initialDelaySeconds"] < live["initialDelaySeconds"]
        assert (
            ready["periodSeconds"] * ready["failureThreshold"]
            < live["periodSeconds"] * live["failureThreshold"]
        )


def test_runbook_points_each_alert_at_its_health_check(rendered) -> None:
    """Every anchor the runbook links exists in docs/HEALTH.md and names the check it says it names."""
    from schedgen_ops.render.alerts import HEALTH_CHECKS

    runbook = (rendered("small") / "docs/RUNBOOK.md").read_text()
    health_doc = (Path(__file__).resolve().parents[2] / "docs/HEALTH.md").read_text()
    assert "[docs/HEALTH.md](docs/HEALTH.md)" in runbook
    assert set(HEALTH_CHECKS) == {
        "ApiDown",
        "ApiHighLatencyP95",
        "QueueBacklog",
        "OldestQueuedJobTooOld",
        "QueuedJobNotWaitingInRedis",
        "JobFailureRatioHigh",
        "NoWorkers",
        "PostgresConnectionsHigh",
        "RedisMemoryHigh",
        "BackupTooOld",
    }
    for alert, anchor in HEALTH_CHECKS.items():
        line = next(line for line in runbook.splitlines() if line.startswith(f"- **{alert}**"))
        link = re.search(r"\[`([a-z_.]+)`\]\(docs/HEALTH\.md#([a-z-]+)\)", line)
        assert link is not None and link.group(2) == anchor, line
        # The anchor exists, on the row of the check the link text names.
        assert f'<a id="{anchor}"></a>`{link.group(1)}`' in health_doc, (alert, anchor)
        assert f"`health --only {link.group(1).split('.')[0]}`" in line


@pytest.mark.parametrize("key", ["monitoring.webhook_url", "backup.webhook_url"])
def test_webhook_urls_in_schedgen_yaml_are_refused_with_the_secret_to_use(key: str) -> None:
    from schedgen_ops.errors import SchedgenError

    secret = "ALERT_WEBHOOK_URL" if key.startswith("monitoring") else "BACKUP_WEBHOOK_URL"
    with pytest.raises(SchedgenError, match=rf"{re.escape(key)}.*schedgen secrets set {secret}"):
        config_for("small", f"{key}=https://hooks.example.org/x")
    assert getattr(config_for("small"), key.split(".")[0]).webhook_url == ""
