"""A small hand-written rendered tree that passes every static check, and helpers to break one thing.

Built from dicts (not copied from the renderer) so each check's fixture says exactly what it relies on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import yaml

HARDENED = {
    "user": "1000:1000",
    "read_only": True,
    "cap_drop": ["ALL"],
    "security_opt": ["no-new-privileges:true"],
    "restart": "unless-stopped",
    "logging": {"driver": "json-file", "options": {"max-size": "10m", "max-file": "5"}},
    "deploy": {"resources": {"limits": {"memory": "512M"}, "reservations": {"memory": "256M"}}},
}


def _svc(image: str, **extra: Any) -> dict[str, Any]:
    svc = copy.deepcopy(HARDENED)
    svc["image"] = image
    svc["healthcheck"] = {"test": ["CMD", "true"], "interval": "10s"}
    svc.update(extra)
    return svc


def _one_shot(image: str, **extra: Any) -> dict[str, Any]:
    svc = copy.deepcopy(HARDENED)
    svc.update(image=image, restart="on-failure", labels={"io.schedgen.one-shot": "true"}, **extra)
    return svc


# Least privilege (checks_privilege): the roles script, the ACL users, the MinIO app user, secret files.
ROLES_SQL = """\\set owner 'schedgen'
\\set app 'schedgen_app'
\\set exporter 'schedgen_exporter'
SELECT format('ALTER ROLE %I WITH LOGIN NOSUPERUSER CREATEDB NOCREATEROLE', :'owner') \\gexec
SELECT format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS', :'app')
\\gexec
SELECT format('ALTER ROLE %I NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS',
              :'exporter') \\gexec
SELECT format('GRANT pg_monitor TO %I', :'exporter') \\gexec
SELECT format('CREATE SCHEMA %I AUTHORIZATION %I', :'app', :'app') \\gexec
"""
REDIS_ACL = (
    "user default reset on #7f5d ~* -@all +@read +sync\n"
    "user app reset on #a1b2 ~* &* +@all -@dangerous +info\n"
    "user exporter reset on #c3d4 -@all +info\n"
)
MINIO_INIT = "mc admin user add root $K $S && mc admin policy attach root app --user $K"
APP_ENV = (
    "SCHEDGEN_DATABASE_URL=postgresql://schedgen_app:s3cretpassw0rd@postgres/db\n"
    "SCHEDGEN_REDIS_URL=redis://app:s3cretpassw0rd@redis:6379/0\n"
    "SCHEDGEN_S3_ACCESS_KEY=sgappkey\n"
)
OPS_ENV = "SCHEDGEN_DATABASE_URL=postgresql://schedgen:0wnerpassw0rd@127.0.0.1/db\n"
PG_INIT_ENV = "PGPASSWORD=sup3rpassw0rd\nSCHEDGEN_PG_OWNER_PASSWORD=0wnerpassw0rd\n"


def compose_base() -> dict[str, Any]:
    app_env = {
        "SCHEDGEN_DB_POOL_MAX": "5",
        "SCHEDGEN_API_WORKERS": "2",
        "SCHEDGEN_WORKER_PROCESSES": "2",
        "SCHEDGEN_JOB_TIMEOUT_S": "300",
        "SCHEDGEN_RATE_UPLOADS": "10/hour",
    }
    return {
        "services": {
            "traefik": _svc(
                "traefik:v3.1.6",
                ports=["80:8080", "443:8443"],
                volumes=["./traefik/traefik.yml:/etc/traefik/traefik.yml:ro"],
            ),
            "api": _svc(
                "ghcr.io/up/schedgen:1.0.0",
                environment=dict(app_env),
                env_file=["secrets/app.env"],
                depends_on={"postgres": {"condition": "service_healthy"}},
            ),
            "pdf-worker": _svc(
                "ghcr.io/up/schedgen:1.0.0",
                environment=dict(app_env),
                stop_grace_period="330s",
                depends_on={"redis": {"condition": "service_healthy"}},
            ),
            "postgres": _svc(
                "postgres:16.4",
                command=["postgres", "-c", "max_connections=100"],
                environment={"POSTGRES_USER": "postgres"},
            ),
            "postgres-init": _one_shot(
                "postgres:16.4",
                command=["psql", "--file=/etc/schedgen/roles.sql"],
                volumes=["./postgres/roles.sql:/etc/schedgen/roles.sql:ro"],
                depends_on={"postgres": {"condition": "service_healthy"}},
            ),
            "redis": _svc("redis:7.4.1", volumes=["./redis/redis.conf:/usr/local/etc/redis/redis.conf:ro"]),
            "minio": _svc("minio/minio:RELEASE.2024-10-13T13-34-11Z", env_file=["secrets/minio.env"]),
            "minio-init": _one_shot(
                "minio/minio:RELEASE.2024-10-13T13-34-11Z",
                command=[MINIO_INIT],
                depends_on={"minio": {"condition": "service_healthy"}},
            ),
        },
        "secrets": {},
    }


def compose_prod() -> dict[str, Any]:
    return {"services": {"api": {"deploy": {"replicas": 2}}, "pdf-worker": {"deploy": {"replicas": 2}}}}


TRAEFIK = {
    "entryPoints": {
        "web": {
            "address": ":8080",
            "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https"}}},
        },
        "websecure": {"address": ":8443", "http": {"tls": {"certResolver": "le"}}},
    }
}
TRAEFIK_DYNAMIC = {
    "http": {
        "middlewares": {"edge-limit": {"rateLimit": {"average": 20, "burst": 40}}},
        "routers": {
            "api": {"rule": "Host(`x`)", "service": "api", "middlewares": ["edge-limit@file"], "tls": {}}
        },
    }
}
REDIS_CONF = (
    "maxmemory 256mb\nmaxmemory-policy noeviction\nappendonly yes\nappendfsync everysec\n" + REDIS_ACL
)
PG_CONF = "shared_buffers = 128MB\n"
RULES = {
    "groups": [
        {
            "name": "schedgen",
            "rules": [
                {
                    "alert": "ApiDown",
                    "expr": 'up{job="api"} == 0',
                    "for": "2m",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "api down"},
                },
                {
                    "alert": "ApiErrors",
                    "expr": 'sum(rate(schedgen_http_requests_total{status=~"5.."}[5m])) > 1',
                    "for": "5m",
                    "labels": {"severity": "warning"},
                },
            ],
        }
    ]
}
PROMETHEUS = {
    "rule_files": ["/etc/prometheus/rules/*.yml"],
    "alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]},
    "scrape_configs": [
        {"job_name": "api", "static_configs": [{"targets": ["api:8000"]}]},
        {"job_name": "pdf-worker", "static_configs": [{"targets": ["pdf-worker:9200"]}]},
    ],
}
SUPERVISORD = """[supervisord]
logfile=/tmp/x/supervisord.log

[program:postgres]
command=/usr/lib/postgresql/15/bin/postgres -D /data -p 5432 -c max_connections=60 -c shared_buffers=128MB \
 -c archive_mode=on -c archive_command="pgbackrest --stanza=schedgen archive-push %%p"

[program:redis]
command=/usr/bin/redis-server %(here)s/redis-acl.conf
  --port 6379 --appendonly yes --maxmemory 256mb --maxmemory-policy noeviction

[program:api-1]
command=python -m schedgen_ops.cli.main serve api --port 8000
environment=SCHEDGEN_API_WORKERS="2",SCHEDGEN_DB_POOL_MAX="5",SCHEDGEN_JOB_TIMEOUT_S="300"
stopwaitsecs=40

[program:api-2]
command=python -m schedgen_ops.cli.main serve api --port 8001
environment=SCHEDGEN_API_WORKERS="2",SCHEDGEN_DB_POOL_MAX="5",SCHEDGEN_JOB_TIMEOUT_S="300"
stopwaitsecs=40

[program:pdf-worker-1]
command=python -m schedgen_ops.cli.main serve worker
environment=SCHEDGEN_WORKER_PROCESSES="2",SCHEDGEN_DB_POOL_MAX="5",SCHEDGEN_JOB_TIMEOUT_S="300"
stopwaitsecs=360
"""
TIMER = "[Timer]\nOnCalendar=*-*-* 02:30:00\nPersistent=true\n"
SERVICE = "[Service]\nType=oneshot\nExecStart=/bin/sh -c 'schedgen backup && schedgen backup verify'\n"

_POD_SC = {"runAsNonRoot": True, "runAsUser": 1000}
_C_SC = {"readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
_RES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}


def _deployment(
    name: str,
    image: str,
    *,
    kind: str = "Deployment",
    grace: int = 30,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "securityContext": copy.deepcopy(_C_SC),
        "resources": copy.deepcopy(_RES),
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8000}},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": 8000}},
        "envFrom": [{"configMapRef": {"name": "app-config"}}, {"secretRef": {"name": "app-secrets"}}],
    }
    if env:
        container["env"] = [{"name": k, "value": v} for k, v in env.items()]
    if args:
        container["args"] = args
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "securityContext": dict(_POD_SC),
                    "terminationGracePeriodSeconds": grace,
                    "containers": [container],
                },
            },
        },
    }


def k8s_manifests() -> list[dict[str, Any]]:
    cronjob_pod = {
        "securityContext": dict(_POD_SC),
        "restartPolicy": "OnFailure",
        "containers": [
            {
                "name": "backup",
                "image": "ghcr.io/up/schedgen:1.0.0",
                "command": ["sh", "-c", "schedgen backup && schedgen backup verify"],
                "envFrom": [{"secretRef": {"name": "backup-secrets"}}],
                "securityContext": copy.deepcopy(_C_SC),
                "resources": copy.deepcopy(_RES),
            }
        ],
    }
    init = {
        **cronjob_pod,
        "volumes": [{"name": "roles", "configMap": {"name": "postgres-init"}}],
        "containers": [
            {
                "name": "postgres-init",
                "image": "postgres:16.4",
                "command": ["psql", "--file=/etc/schedgen/roles.sql"],
                "securityContext": copy.deepcopy(_C_SC),
                "resources": copy.deepcopy(_RES),
            }
        ],
    }
    redis = _deployment("redis", "redis:7.4.1", kind="StatefulSet", args=["--appendonly", "yes"])
    redis["spec"]["template"]["spec"]["volumes"] = [{"name": "conf", "configMap": {"name": "redis-conf"}}]
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "schedgen"}},
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "app-config"},
            "data": {
                "SCHEDGEN_DB_POOL_MAX": "2",
                "SCHEDGEN_JOB_TIMEOUT_S": "300",
                "SCHEDGEN_RATE_UPLOADS": "10/hour",
            },
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "redis-conf"},
            "data": {"redis.conf": REDIS_CONF},
        },
        _deployment("api", "ghcr.io/up/schedgen:1.0.0"),
        _deployment("pdf-worker", "ghcr.io/up/schedgen:1.0.0", grace=330),
        _deployment("postgres", "postgres:16.4", kind="StatefulSet", args=["-c", "max_connections=200"]),
        redis,
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "api"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "api"},
                "minReplicas": 2,
                "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu"}}],
            },
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "pdf-worker"},
            "spec": {
                "scaleTargetRef": {"name": "pdf-worker"},
                "minReplicaCount": 2,
                "maxReplicaCount": 10,
                "triggers": [{"type": "redis", "metadata": {"listName": "rq:queue:default"}}],
            },
        },
        *[
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": {"name": name},
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": name}}},
            }
            for name in ("api", "pdf-worker")
        ],
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "default-deny"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        },
        *[
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": f"allow-{name}"},
                "spec": {"podSelector": {"matchLabels": {"app": name}}, "ingress": [{}]},
            }
            for name in ("api", "pdf-worker", "postgres", "redis")
        ],
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {
                "name": "api",
                "annotations": {
                    "traefik.ingress.kubernetes.io/router.middlewares": "schedgen-edge-limit@kubernetescrd"
                },
            },
            "spec": {"tls": [{"hosts": ["x"], "secretName": "tls"}], "rules": [{"host": "x"}]},
        },
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "edge-limit"},
            "spec": {"rateLimit": {"average": 20, "burst": 40}},
        },
        {
            "apiVersion": "traefik.io/v1alpha1",
            "kind": "Middleware",
            "metadata": {"name": "https-redirect"},
            "spec": {"redirectScheme": {"scheme": "https", "permanent": True}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "postgres-init"},
            "spec": {"template": {"spec": init}},
        },
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "metadata": {"name": "backup"},
            "spec": {"schedule": "30 2 * * *", "jobTemplate": {"spec": {"template": {"spec": cronjob_pod}}}},
        },
    ]


KUSTOMIZATION = {
    "resources": ["all.yaml"],
    "configMapGenerator": [{"name": "postgres-init", "files": ["roles.sql=postgres/roles.sql"]}],
    "secretGenerator": [
        {"name": "app-secrets", "envs": ["secrets/app.env"]},
        {"name": "backup-secrets", "envs": ["secrets/backup.env"]},
    ],
}


def write_tree(
    root: Path,
    *,
    profile: str = "medium",
    base: dict[str, Any] | None = None,
    prod: dict[str, Any] | None = None,
    manifests: list[dict[str, Any]] | None = None,
    files: dict[str, str | None] | None = None,
) -> Path:
    """Write the good tree (or the given replacements) under ``root``; ``files`` adds or overrides."""
    texts: dict[str, str | None] = {
        "render.json": json.dumps({"profile": profile, "targets": ["compose", "kubernetes", "local"]}),
        "compose/docker-compose.yml": yaml.safe_dump(base if base is not None else compose_base()),
        "compose/docker-compose.prod.yml": yaml.safe_dump(prod if prod is not None else compose_prod()),
        "compose/secrets/app.env": APP_ENV,
        "compose/secrets/minio.env": "MINIO_ROOT_USER=sgrootkey\nMINIO_ROOT_PASSWORD=r00tpassw0rd\n",
        "compose/postgres/roles.sql": ROLES_SQL,
        "kubernetes/secrets/app.env": APP_ENV,
        "kubernetes/secrets/backup.env": OPS_ENV.replace("127.0.0.1", "postgres"),
        "kubernetes/postgres/roles.sql": ROLES_SQL,
        "local/secrets/app.env": APP_ENV.replace("@postgres/", "@127.0.0.1/").replace(
            "@redis:", "@127.0.0.1:"
        ),
        "local/secrets/ops.env": OPS_ENV,
        "local/secrets/postgres-init.env": PG_INIT_ENV,
        "local/roles.sql": ROLES_SQL,
        "local/redis-acl.conf": REDIS_ACL,
        "compose/traefik/traefik.yml": yaml.safe_dump(TRAEFIK),
        "compose/traefik/dynamic.yml": yaml.safe_dump(TRAEFIK_DYNAMIC),
        "compose/redis/redis.conf": REDIS_CONF,
        "compose/postgres/postgresql.conf": PG_CONF,
        "compose/prometheus/prometheus.yml": yaml.safe_dump(PROMETHEUS),
        "compose/prometheus/rules/schedgen.yml": yaml.safe_dump(RULES),
        "local/supervisord.conf": SUPERVISORD,
        "systemd/schedgen-backup.timer": TIMER,
        "systemd/schedgen-backup.service": SERVICE,
        "kubernetes/kustomization.yaml": yaml.safe_dump(KUSTOMIZATION),
        "kubernetes/all.yaml": yaml.safe_dump_all(manifests if manifests is not None else k8s_manifests()),
    }
    texts.update(files or {})
    for rel, text in texts.items():
        if text is None:
            continue
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root
