"""Helpers the static checks share: service roles, pod templates, environments, units.

Roles are recognised by conventional names (traefik/proxy, api, worker, redis, postgres) and images so the
checks work on any rendered tree without knowing the renderer's internals.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from schedgen_ops.ops.readiness.tree import Manifest, RenderedTree, keyed
from schedgen_ops.service.settings import ServiceSettings

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod", "ReplicaSet")
LONG_RUNNING_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


def role(name: str, image: str = "") -> str:
    """proxy | api | worker | redis | postgres | other, from a service/workload name and its image."""
    lname, limage = name.lower(), image.lower().rsplit("/", 1)[-1]
    if "exporter" in lname or "exporter" in limage:
        return "other"
    if "traefik" in lname or "proxy" in lname or limage.startswith("traefik"):
        return "proxy"
    if "worker" in lname:
        return "worker"
    if lname == "api" or lname.endswith("-api") or lname.startswith("api"):
        return "api"
    if "redis" in lname or limage.startswith("redis"):
        return "redis"
    if "postgres" in lname or limage.startswith("postgres"):
        return "postgres"
    return "other"


def service_role(name: str, service: dict[str, Any]) -> str:
    return role(name, str(service.get("image", "")))


ONE_SHOT_LABEL = "io.schedgen.one-shot"


def is_one_shot(service: dict[str, Any]) -> bool:
    """A compose service that runs to completion rather than keeps running: restart "no", started only on
    demand (profiles), or labelled ``io.schedgen.one-shot=true`` (init jobs others wait for with
    ``condition: service_completed_successfully``)."""
    restart = str(service.get("restart", "")).strip("'\"")
    condition = ((service.get("deploy") or {}).get("restart_policy") or {}).get("condition")
    labelled = str(keyed(service.get("labels")).get(ONE_SHOT_LABEL, "")).lower() == "true"
    return restart == "no" or condition == "none" or bool(service.get("profiles")) or labelled


def one_shot_names(services: dict[str, Any]) -> set[str]:
    """Services that are one-shot by their own settings or because others wait for them to complete."""
    out = {name for name, svc in services.items() if is_one_shot(svc or {})}
    for svc in services.values():
        deps = (svc or {}).get("depends_on") or {}
        if isinstance(deps, dict):
            out |= {
                d
                for d, spec in deps.items()
                if (spec or {}).get("condition") == "service_completed_successfully"
            }
    return out


# --- Kubernetes pod templates ----------------------------------------------------------------------


@dataclass(frozen=True)
class PodTemplate:
    """A workload's pod spec with the document path that leads to it."""

    manifest: Manifest
    path: str
    spec: dict[str, Any]
    labels: dict[str, str]


def pod_template(manifest: Manifest) -> PodTemplate | None:
    doc = manifest.doc
    if manifest.kind == "Pod":
        return PodTemplate(
            manifest, "spec", doc.get("spec") or {}, (doc.get("metadata") or {}).get("labels") or {}
        )
    if manifest.kind == "CronJob":
        tmpl = (((doc.get("spec") or {}).get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        path = "spec.jobTemplate.spec.template"
    elif manifest.kind in WORKLOAD_KINDS:
        tmpl = (doc.get("spec") or {}).get("template") or {}
        path = "spec.template"
    else:
        return None
    return PodTemplate(
        manifest, f"{path}.spec", tmpl.get("spec") or {}, (tmpl.get("metadata") or {}).get("labels") or {}
    )


def pod_templates(tree: RenderedTree, *kinds: str) -> list[PodTemplate]:
    wanted = kinds or WORKLOAD_KINDS
    out = []
    for manifest in tree.kinds(*wanted):
        tmpl = pod_template(manifest)
        if tmpl is not None:
            out.append(tmpl)
    return out


def containers(tmpl: PodTemplate, *, init: bool = True) -> Iterator[tuple[str, dict[str, Any]]]:
    """(document path, container) for every container (and init container) of a pod template."""
    groups = ("containers", "initContainers") if init else ("containers",)
    for group in groups:
        for index, container in enumerate(tmpl.spec.get(group) or []):
            yield f"{tmpl.path}.{group}[{index}]", container


def workload_role(manifest: Manifest) -> str:
    tmpl = pod_template(manifest)
    image = ""
    if tmpl is not None:
        first: dict[str, Any] = next(iter(tmpl.spec.get("containers") or []), {})
        image = str(first.get("image", ""))
    return role(manifest.name, image)


def autoscale_max(manifests: list[Manifest]) -> dict[str, tuple[int | None, int | None, Manifest]]:
    """Deployment name -> (min, max, scaler) from HPAs and KEDA ScaledObjects."""
    out: dict[str, tuple[int | None, int | None, Manifest]] = {}
    for m in manifests:
        spec = m.doc.get("spec") or {}
        target = (spec.get("scaleTargetRef") or {}).get("name")
        if m.kind == "HorizontalPodAutoscaler" and target:
            out[str(target)] = (as_int(spec.get("minReplicas", 1)), as_int(spec.get("maxReplicas")), m)
        elif m.kind == "ScaledObject" and target:
            out[str(target)] = (
                as_int(spec.get("minReplicaCount", 0)),
                as_int(spec.get("maxReplicaCount", 100)),
                m,
            )
    return out


def selector_matches(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels + matchExpressions); {} selects everything."""
    if selector is None:
        return False
    match = selector.get("matchLabels") or {}
    if any(labels.get(k) != v for k, v in match.items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        present = key in labels
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and present and labels.get(key) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def container_env(tree: RenderedTree, container: dict[str, Any]) -> dict[str, str]:
    """A container's environment with ``envFrom`` ConfigMaps resolved (objects and kustomize generators)."""
    env: dict[str, str] = {}
    configmaps = _configmaps(tree)
    for source in container.get("envFrom") or []:
        ref = (source.get("configMapRef") or {}).get("name")
        if ref and ref in configmaps:
            env.update(configmaps[ref])
    for item in container.get("env") or []:
        if "value" in item:
            env[str(item.get("name"))] = str(item["value"])
        else:
            ref = ((item.get("valueFrom") or {}).get("configMapKeyRef")) or {}
            if ref.get("name") in configmaps and ref.get("key") in configmaps[ref["name"]]:
                env[str(item.get("name"))] = configmaps[ref["name"]][ref["key"]]
    return env


def template_env(tree: RenderedTree, tmpl: PodTemplate) -> dict[str, str]:
    """The environment of a pod template's containers (init containers left out), later ones winning."""
    env: dict[str, str] = {}
    for _, container in containers(tmpl, init=False):
        env.update(container_env(tree, container))
    return env


def configmaps(tree: RenderedTree) -> dict[str, dict[str, str]]:
    """ConfigMap name -> data, from ConfigMap objects and kustomize configMapGenerators."""
    return _configmaps(tree)


def _configmaps(tree: RenderedTree) -> dict[str, dict[str, str]]:
    maps: dict[str, dict[str, str]] = {}
    for manifest in tree.kinds("ConfigMap"):
        maps[manifest.name] = {str(k): str(v) for k, v in (manifest.doc.get("data") or {}).items()}
    for rel, kustomization in tree.kustomizations():
        base = rel.rsplit("/", 1)[0]
        for gen in kustomization.get("configMapGenerator") or []:
            data: dict[str, str] = {}
            for env_file in gen.get("envs") or []:
                path = tree.root / base / env_file
                if path.is_file():
                    data.update(parse_env_file(path.read_text(encoding="utf-8")))
            for entry in gen.get("files") or []:
                key, sep, rel_file = str(entry).partition("=")
                rel_file = rel_file if sep else key
                path = tree.root / base / rel_file
                if path.is_file():
                    data[key.rsplit("/", 1)[-1]] = path.read_text(encoding="utf-8")
            for literal in gen.get("literals") or []:
                key, _, value = str(literal).partition("=")
                data[key] = value
            maps[str(gen.get("name"))] = data
    return maps


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks ignored, surrounding quotes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        out[key.strip().removeprefix("export ").strip()] = value.strip().strip("'\"")
    return out


def service_command(service: dict[str, Any]) -> list[str]:
    """A compose service's ``command`` as arguments (a string is split on white space)."""
    command = service.get("command") or []
    return command.split() if isinstance(command, str) else [str(a) for a in command]


def container_argv(container: dict[str, Any]) -> list[str]:
    """A container's ``command`` followed by its ``args``."""
    return [str(a) for a in [*(container.get("command") or []), *(container.get("args") or [])]]


def service_env(tree: RenderedTree, service: dict[str, Any]) -> dict[str, str]:
    """A compose service's environment, env_file entries (relative to compose/) resolved first."""
    env: dict[str, str] = {}
    env_files = service.get("env_file") or []
    for entry in [env_files] if isinstance(env_files, str | dict) else env_files:
        rel = entry.get("path") if isinstance(entry, dict) else entry
        path = tree.root / "compose" / str(rel)
        if path.is_file():
            env.update(parse_env_file(path.read_text(encoding="utf-8")))
    env.update({k: "" if v is None else str(v) for k, v in keyed(service.get("environment")).items()})
    return env


def service_default(field: str) -> Any:
    """The service's own default for a setting (what it runs with when the tree does not set it)."""
    return ServiceSettings.model_fields[field].default


# --- units -----------------------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|h|m|s)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_s(value: Any) -> float | None:
    """Compose duration ("1m30s", "330s", 90) in seconds; None when unparseable."""
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts)


def as_int(value: Any) -> int | None:
    try:
        return int(str(value).strip().strip("'\""))
    except (TypeError, ValueError):
        return None
