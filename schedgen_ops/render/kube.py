"""Kubernetes checks: built-in kinds against their schemas (kubernetes-validate, strict), operator
resources for the fields we rely on, and `kubectl kustomize` when kubectl is on PATH."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from schedgen_ops.render.problems import Problem

K8S_VERSION = "1.30.0"
# Operator kinds (no schema in kubernetes-validate): the fields each must carry.
CRD_REQUIRED: dict[str, list[str]] = {
    "ScaledObject": ["spec.scaleTargetRef.name", "spec.triggers"],
    "TriggerAuthentication": ["spec.secretTargetRef"],
    "Cluster": ["spec.instances", "spec.storage.size"],
    "ScheduledBackup": ["spec.schedule", "spec.cluster.name"],
    "RedisReplication": ["spec.clusterSize", "spec.kubernetesConfig.image"],
    "RedisSentinel": ["spec.clusterSize", "spec.redisSentinelConfig.redisReplicationName"],
    "Tenant": ["spec.pools"],
    "Middleware": ["spec"],
}


def _get(doc: dict[str, Any], dotted: str) -> Any:
    node: Any = doc
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _docs(out_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    docs = []
    root = out_dir / "kubernetes"
    for path in sorted(root.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path.relative_to(out_dir).as_posix(), doc))
    return docs


def check_kubernetes(out_dir: Path) -> list[Problem]:
    probs: list[Problem] = []
    root = out_dir / "kubernetes"
    kustomization = (
        yaml.safe_load((root / "kustomization.yaml").read_text())
        if (root / "kustomization.yaml").is_file()
        else None
    )
    if not kustomization:
        return [Problem("kubernetes/kustomization.yaml", "missing")]
    for res in kustomization.get("resources", []):
        if not (root / res).is_file():
            probs.append(Problem("kubernetes/kustomization.yaml", f"resource {res} does not exist"))
    listed = set(kustomization.get("resources", []))
    for path in sorted(root.glob("*.yaml")):
        if path.name != "kustomization.yaml" and path.name not in listed:
            probs.append(Problem(f"kubernetes/{path.name}", "not listed in kustomization.yaml resources"))
    for gen in [*kustomization.get("configMapGenerator", []), *kustomization.get("secretGenerator", [])]:
        for item in [*gen.get("files", []), *gen.get("envs", [])]:
            if not (root / item.split("=")[-1]).is_file():
                probs.append(
                    Problem("kubernetes/kustomization.yaml", f"generator input {item} does not exist")
                )
    for rel, doc in _docs(out_dir):
        kind = doc.get("kind", "?")
        name = _get(doc, "metadata.name")
        where = f"{kind}/{name}"
        if kind in CRD_REQUIRED:
            for field in CRD_REQUIRED[kind]:
                if _get(doc, field) in (None, "", []):
                    probs.append(Problem(rel, f"{where}: {field} is required"))
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            field_path = "/".join(str(p) for p in exc.path)
            probs.append(Problem(rel, f"{where}: {field_path}: {exc.message}"))
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
            probs.append(Problem(rel, f"{where}: no schema for {doc.get('apiVersion')} {kind}: {exc}"))
        probs += _pod_policy(rel, where, doc)
    kubectl = shutil.which("kubectl")
    if kubectl:
        proc = subprocess.run(
            [kubectl, "kustomize", str(root)], capture_output=True, text=True, timeout=120, check=False
        )
        if proc.returncode != 0:
            probs.append(
                Problem("kubernetes/kustomization.yaml", f"kubectl kustomize: {proc.stderr.strip()}")
            )
    return probs


def _pod_policy(rel: str, where: str, doc: dict[str, Any]) -> list[Problem]:
    """Probes, resources and securityContext on every workload container."""
    kind = doc.get("kind")
    if kind not in ("Deployment", "StatefulSet", "CronJob", "Job"):
        return []
    spec = (
        _get(doc, "spec.jobTemplate.spec.template.spec")
        if kind == "CronJob"
        else _get(doc, "spec.template.spec")
    )
    probs = []
    pod_sc = (spec or {}).get("securityContext") or {}
    for container in (spec or {}).get("containers", []):
        cname = f"{where} container {container.get('name')}"
        sc = container.get("securityContext") or {}
        if not (sc.get("runAsNonRoot") or pod_sc.get("runAsNonRoot")):
            probs.append(Problem(rel, f"{cname}: runAsNonRoot is not set"))
        if sc.get("allowPrivilegeEscalation") is not False:
            probs.append(Problem(rel, f"{cname}: allowPrivilegeEscalation must be false"))
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            probs.append(Problem(rel, f"{cname}: capabilities.drop ALL missing"))
        res = container.get("resources") or {}
        if not res.get("requests") or not res.get("limits"):
            probs.append(Problem(rel, f"{cname}: requests and limits are required"))
        if kind not in ("CronJob", "Job"):
            live, ready = container.get("livenessProbe"), container.get("readinessProbe")
            if not live or not ready:
                probs.append(Problem(rel, f"{cname}: liveness and readiness probes are required"))
            elif container.get("name") == "api" and live == ready:
                probs.append(Problem(rel, f"{cname}: liveness and readiness probes must differ"))
    return probs
