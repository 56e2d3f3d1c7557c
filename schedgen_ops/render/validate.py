"""Validate a rendered tree: schemas, cross-references and the rules the stack must never break.

Each check returns `Problem`s naming the file; `validate_tree` runs every check that applies to the
directories present. External validators (promtool, kubectl kustomize) run when on PATH.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from schedgen_ops.render.engine import MANIFEST, SECRETS_DIR
from schedgen_ops.render.problems import Problem

COMPOSE_FILES = ("docker-compose.yml", "docker-compose.prod.yml", "docker-compose.dev.yml")
# The one process allowed to start as root: a one-shot that chowns fresh volumes (CHOWN only, no network).
ROOT_ALLOWED = {"volume-init"}
ROOT_CAPS_ALLOWED = {"CHOWN"}
REPLICATED = {"api", "pdf-worker"}
# Services that run once and exit (no healthcheck; dependents wait for service_completed_successfully).
ONE_SHOT_LABEL = "io.schedgen.one-shot"
_SEQ_MERGE = {
    "ports",
    "expose",
    "volumes",
    "env_file",
    "dns",
    "tmpfs",
    "cap_add",
    "cap_drop",
    "security_opt",
    "networks",
}


def _compose_schema_path() -> Path:
    import check_jsonschema

    return Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "compose-spec.json"


@functools.cache
def _schema(path: str) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def schema_problems(doc: Any, schema_path: Path, rel: str) -> list[Problem]:
    """Every JSON-schema violation of ``doc`` (the draft the schema declares)."""
    schema = _schema(str(schema_path))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        Problem(rel, f"schema: {'/'.join(str(p) for p in err.absolute_path) or '(root)'}: {err.message}")
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def merge_compose(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge an overlay into a compose model like `docker compose -f a -f b` does (for our shapes)."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        cur = out.get(key)
        if isinstance(value, dict) and isinstance(cur, dict):
            out[key] = merge_compose(cur, value)
        elif isinstance(value, list) and isinstance(cur, list) and key in _SEQ_MERGE:
            out[key] = cur + [v for v in value if v not in cur]
        else:
            out[key] = copy.deepcopy(value)
    return out


def _published(port: Any) -> str | None:
    if isinstance(port, dict):
        return str(port["published"]) if port.get("published") else None
    text = str(port)
    parts = text.split(":")
    return ":".join(parts[:-1]) if len(parts) > 1 else None


def _port_span(published: str) -> int:
    """How many host ports a ``published`` value names (``8000`` -> 1, ``8000-8003`` -> 4)."""
    low, _, high = published.partition("-")
    try:
        return int(high or low) - int(low) + 1
    except ValueError:
        return 1


def _replicas(svc: dict[str, Any]) -> int:
    return int((svc.get("deploy") or {}).get("replicas") or 1)


def compose_reference_problems(model: dict[str, Any], rel: str, base_dir: Path) -> list[Problem]:
    """Every network, volume, secret, env_file, bind source and depends_on target must exist."""
    probs: list[Problem] = []
    services = model.get("services", {})
    networks = set(model.get("networks", {}) or {})
    volumes = set(model.get("volumes", {}) or {})
    secrets = set(model.get("secrets", {}) or {})
    for name, svc in services.items():
        nets = svc.get("networks", [])
        for net in nets if isinstance(nets, list) else list(nets):
            if net not in networks:
                probs.append(Problem(rel, f"service {name}: network {net!r} is not defined"))
        for dep in svc.get("depends_on", {}) or {}:
            if dep not in services:
                probs.append(Problem(rel, f"service {name}: depends_on {dep!r} is not a service"))
        for sec in svc.get("secrets", []) or []:
            sname = sec if isinstance(sec, str) else sec.get("source")
            if sname not in secrets:
                probs.append(Problem(rel, f"service {name}: secret {sname!r} is not defined"))
        for env_file in svc.get("env_file", []) or []:
            if not (base_dir / env_file).is_file():
                probs.append(Problem(rel, f"service {name}: env_file {env_file} does not exist"))
        for vol in svc.get("volumes", []) or []:
            source = vol.split(":")[0] if isinstance(vol, str) else vol.get("source", "")
            if source.startswith((".", "/")):
                if not (base_dir / source).exists():
                    probs.append(Problem(rel, f"service {name}: bind source {source} does not exist"))
            elif source and source not in volumes:
                probs.append(Problem(rel, f"service {name}: volume {source!r} is not defined"))
    return probs


def compose_policy_problems(model: dict[str, Any], rel: str, *, production: bool) -> list[Problem]:
    """The rules no rendered stack may break (checked on the merged base + overlay)."""
    probs: list[Problem] = []
    services = model.get("services", {})
    # The front door: traefik, or the api itself when the edge is off (edge.enabled false).
    front = "traefik" if "traefik" in services else "api"
    for name, svc in services.items():
        where = f"service {name}"
        image = str(svc.get("image", ""))
        one_shot = (svc.get("labels") or {}).get(ONE_SHOT_LABEL) == "true"
        if ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
            probs.append(Problem(rel, f"{where}: image {image!r} is not pinned to a tag"))
        if one_shot:
            pass
        elif "healthcheck" not in svc or svc["healthcheck"].get("disable"):
            probs.append(Problem(rel, f"{where}: no healthcheck"))
        else:
            test = svc["healthcheck"]["test"]
            joined = " ".join(test) if isinstance(test, list) else str(test)
            if image.startswith("schedgen/") and re.search(r"\b(wget|curl)\b", joined):
                probs.append(Problem(rel, f"{where}: our image has neither wget nor curl; use python"))
        for dep, cond in (svc.get("depends_on") or {}).items():
            dep_one_shot = (services.get(dep, {}).get("labels") or {}).get(ONE_SHOT_LABEL) == "true"
            wanted = "service_completed_successfully" if dep_one_shot else "service_healthy"
            if not isinstance(cond, dict) or cond.get("condition") != wanted:
                probs.append(Problem(rel, f"{where}: depends_on {dep} without condition {wanted}"))
        if not svc.get("restart"):
            probs.append(Problem(rel, f"{where}: no restart policy"))
        res = (svc.get("deploy") or {}).get("resources") or {}
        if not res.get("limits") or not res.get("reservations"):
            probs.append(Problem(rel, f"{where}: resource limits and reservations are required"))
        if "ALL" not in (svc.get("cap_drop") or []):
            probs.append(Problem(rel, f"{where}: cap_drop ALL missing"))
        if "no-new-privileges:true" not in (svc.get("security_opt") or []):
            probs.append(Problem(rel, f"{where}: no-new-privileges missing"))
        user = str(svc.get("user", "0"))
        is_root = user.split(":")[0] in ("0", "root")
        if is_root and (name not in ROOT_ALLOWED or not one_shot or svc.get("network_mode") != "none"):
            probs.append(Problem(rel, f"{where}: runs as root"))
        extra_caps = set(svc.get("cap_add") or []) - (ROOT_CAPS_ALLOWED if is_root else set())
        if extra_caps:
            probs.append(Problem(rel, f"{where}: adds capabilities {sorted(extra_caps)}"))
        if not (svc.get("logging") or {}).get("options", {}).get("max-size"):
            probs.append(Problem(rel, f"{where}: no log rotation (logging.options.max-size)"))
        ports = svc.get("ports") or []
        if name in REPLICATED:
            # A replicated service may publish only a host port range with a port for every replica.
            fixed = [p for p in ports if _port_span(_published(p) or "0") < max(2, _replicas(svc))]
            if svc.get("container_name") or (fixed and not (name == front and _replicas(svc) == 1)):
                probs.append(
                    Problem(rel, f"{where}: replicated service with fixed host ports or container_name")
                )
        for port in ports:
            published = _published(port)
            if production and name != front and published:
                probs.append(Problem(rel, f"{where}: publishes {published} (only {front} may in production)"))
            bind = port.get("host_ip", "") + ":" if isinstance(port, dict) else str(port)
            if not production and published and not bind.startswith("127.0.0.1:"):
                probs.append(Problem(rel, f"{where}: dev port {port} must bind 127.0.0.1"))
        if production and name == "traefik":
            published_ports = sorted(str(_published(p)) for p in ports)
            if published_ports != ["443", "80"]:
                probs.append(Problem(rel, f"{where}: must publish exactly 80 and 443, got {published_ports}"))
    worker = model.get("services", {}).get("pdf-worker", {})
    env = worker.get("environment") or {}
    timeout = int(env.get("SCHEDGEN_JOB_TIMEOUT_S", "0") or 0)
    grace = str(worker.get("stop_grace_period", "0s"))
    if worker and (not grace.endswith("s") or int(grace[:-1]) <= timeout):
        probs.append(
            Problem(rel, f"service pdf-worker: stop_grace_period {grace} is not above the job timeout")
        )
    return probs


def _load_yaml(path: Path, rel: str, probs: list[Problem]) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        probs.append(Problem(rel, f"invalid YAML: {exc}"))
        return None


def check_compose(out_dir: Path) -> list[Problem]:
    base_dir = out_dir / "compose"
    probs: list[Problem] = []
    models: dict[str, Any] = {}
    for name in COMPOSE_FILES:
        path = base_dir / name
        rel = f"compose/{name}"
        if not path.is_file():
            probs.append(Problem(rel, "missing"))
            continue
        doc = _load_yaml(path, rel, probs)
        if doc is not None:
            probs += schema_problems(doc, _compose_schema_path(), rel)
            models[name] = doc
    if len(models) != len(COMPOSE_FILES):
        return probs
    base = models["docker-compose.yml"]
    probs += compose_reference_problems(base, "compose/docker-compose.yml", base_dir)
    for overlay, production in (("docker-compose.prod.yml", True), ("docker-compose.dev.yml", False)):
        unknown = set(models[overlay].get("services", {})) - set(base.get("services", {}))
        probs += [Problem(f"compose/{overlay}", f"service {s!r} is not in the base file") for s in unknown]
        merged = merge_compose(base, models[overlay])
        rel = f"compose/docker-compose.yml + {overlay}"
        probs += compose_reference_problems(merged, rel, base_dir)
        probs += compose_policy_problems(merged, rel, production=production)
    return probs


def check_redis(out_dir: Path) -> list[Problem]:
    probs: list[Problem] = []
    for path in sorted(out_dir.glob("*/redis/redis.conf")):
        rel = path.relative_to(out_dir).as_posix()
        conf = dict(
            line.split(None, 1)
            for line in path.read_text().splitlines()
            if line.strip() and not line.startswith("#") and len(line.split(None, 1)) == 2
        )
        if conf.get("maxmemory-policy") != "noeviction":
            probs.append(Problem(rel, "maxmemory-policy must be noeviction on a queue Redis"))
        if conf.get("appendonly") != "yes":
            probs.append(Problem(rel, "appendonly must be yes"))
        if "maxmemory" not in conf:
            probs.append(Problem(rel, "maxmemory is not set"))
    return probs


def check_postgres(out_dir: Path, facts: dict[str, Any]) -> list[Problem]:
    probs: list[Problem] = []
    budget = facts.get("connection_budget", {}).get("total")
    for path in sorted(out_dir.glob("*/postgres/postgresql.conf")):
        rel = path.relative_to(out_dir).as_posix()
        match = re.search(r"^max_connections\s*=\s*(\d+)", path.read_text(), re.M)
        if not match:
            probs.append(Problem(rel, "max_connections is not set"))
        elif budget is not None and int(match.group(1)) < int(budget):
            probs.append(
                Problem(rel, f"max_connections {match.group(1)} is below the pools' budget {budget}")
            )
    return probs


def check_traefik(out_dir: Path) -> list[Problem]:
    probs: list[Problem] = []
    for path in sorted(out_dir.glob("*/traefik/*.yml")):
        rel = path.relative_to(out_dir).as_posix()
        text = path.read_text()
        if "${" in text:
            probs.append(Problem(rel, "contains ${...}: Traefik does not expand variables in its files"))
        doc = _load_yaml(path, rel, probs)
        if path.name == "traefik.yml" and doc is not None and (doc.get("api") or {}).get("insecure"):
            probs.append(Problem(rel, "api.insecure exposes the dashboard without auth"))
    return probs


def check_grafana(out_dir: Path) -> list[Problem]:
    probs: list[Problem] = []
    for path in sorted(out_dir.glob("*/grafana/provisioning/*/*.yml")):
        rel = path.relative_to(out_dir).as_posix()
        doc = _load_yaml(path, rel, probs) or {}
        if doc.get("apiVersion") != 1:
            probs.append(Problem(rel, "provisioning files need apiVersion: 1"))
        if path.parent.name == "dashboards":
            for provider in doc.get("providers", []):
                if provider.get("type") != "file" or not (provider.get("options") or {}).get("path"):
                    probs.append(Problem(rel, "dashboard provider needs type file and options.path"))
    for path in sorted(out_dir.glob("*/grafana/dashboards/*.json")):
        rel = path.relative_to(out_dir).as_posix()
        try:
            doc = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            probs.append(Problem(rel, f"invalid JSON: {exc}"))
            continue
        if "dashboard" in doc:
            probs.append(
                Problem(rel, 'API envelope {"dashboard": ...}: file provisioning needs the bare model')
            )
        if not doc.get("uid") or not doc.get("title") or not isinstance(doc.get("panels"), list):
            probs.append(Problem(rel, "dashboard needs uid, title and panels"))
    return probs


def _run(argv: list[str], cwd: Path) -> tuple[int, str]:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, (proc.stdout + proc.stderr).strip()


def _digest(root: Path, patterns: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for pattern in patterns:
        for path in sorted(root.glob(pattern)):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# promtool results by the digest of the files each step reads: identical rule sets (the compose and
# kubernetes copies, repeated renders in one process) are checked once.
_PROMTOOL_CACHE: dict[tuple[str, str], str | None] = {}


def check_prometheus(out_dir: Path) -> list[Problem]:
    probs: list[Problem] = []
    promtool = shutil.which("promtool")
    for prom in sorted(out_dir.glob("*/prometheus")):
        rel = prom.relative_to(out_dir).as_posix()
        for path in sorted(prom.rglob("*.yml")):
            _load_yaml(path, path.relative_to(out_dir).as_posix(), probs)
        if promtool is None:
            continue
        rules = sorted(p.relative_to(prom).as_posix() for p in prom.glob("rules/*.yml"))
        tests = sorted(p.relative_to(prom).as_posix() for p in prom.glob("tests/*.yml"))
        steps = [
            (
                "prometheus.yml",
                [promtool, "check", "config", "--syntax-only", "prometheus.yml"],
                ("prometheus.yml", "rules/*.yml"),
            ),
            ("rules", [promtool, "check", "rules", *rules], ("rules/*.yml",)),
            ("tests", [promtool, "test", "rules", *tests], ("rules/*.yml", "tests/*.yml")),
        ]
        for what, argv, reads in steps:
            key = (what, _digest(prom, reads))
            if key not in _PROMTOOL_CACHE:
                _PROMTOOL_CACHE[key] = _promtool_step(promtool, argv, prom)
            failure = _PROMTOOL_CACHE[key]
            if failure:
                probs.append(Problem(f"{rel}/{what}", failure))
    return probs


def _promtool_step(promtool: str, argv: list[str], prom: Path) -> str | None:
    code, output = _run(argv, prom)
    if code != 0 and "kubernetes_sd_configs not found" in output:
        code, output = _check_without_k8s_sd(promtool, prom)
    if code == 0:
        return None
    last = [line for line in output.splitlines() if line.strip()][-6:]
    return f"{' '.join(argv[1:3])} failed: {' | '.join(last)}"


def _check_without_k8s_sd(promtool: str, prom: Path) -> tuple[int, str]:
    """Debian's promtool is built without Kubernetes discovery: check everything else of the config
    with each kubernetes_sd_configs block swapped for an empty static_configs."""
    import tempfile

    doc = yaml.safe_load((prom / "prometheus.yml").read_text())
    for job in doc.get("scrape_configs", []):
        if job.pop("kubernetes_sd_configs", None) is not None:
            job["static_configs"] = [{"targets": []}]
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(prom, tmp, dirs_exist_ok=True)
        (Path(tmp) / "prometheus.yml").write_text(yaml.safe_dump(doc))
        return _run([promtool, "check", "config", "--syntax-only", "prometheus.yml"], Path(tmp))


def check_secrets(out_dir: Path) -> list[Problem]:
    """Secret files are 0600; no secret value appears in any other rendered file."""
    probs: list[Problem] = []
    values: set[str] = set()
    for path in sorted(out_dir.glob(f"*/{SECRETS_DIR}/*.env")):
        rel = path.relative_to(out_dir).as_posix()
        if path.stat().st_mode & 0o077:
            probs.append(Problem(rel, f"mode {path.stat().st_mode & 0o777:04o}; secrets must be 0600"))
        for line in path.read_text().splitlines():
            _, _, value = line.partition("=")
            if len(value) >= 12:
                values.add(value.strip())
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        if SECRETS_DIR in path.relative_to(out_dir).parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for value in values:
            if value in text:
                probs.append(Problem(path.relative_to(out_dir).as_posix(), "contains a secret value"))
                break
    return probs


def check_manifest(out_dir: Path) -> tuple[list[Problem], dict[str, Any]]:
    path = out_dir / MANIFEST
    if not path.is_file():
        return [Problem(MANIFEST, "missing: not a tree rendered by schedgen")], {}
    data = json.loads(path.read_text())
    probs: list[Problem] = []
    for rel, digest in data.get("files", {}).items():
        file = out_dir / rel
        if not file.is_file():
            probs.append(Problem(rel, "listed in render.json but missing"))
        elif hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            probs.append(Problem(rel, "changed since it was rendered (re-run schedgen render)"))
    return probs, data


def validate_tree(out_dir: Path) -> list[Problem]:
    """Validate whatever targets exist under ``out_dir``; an empty list means valid."""
    from schedgen_ops.render.kube import check_kubernetes

    probs, data = check_manifest(out_dir)
    facts = data.get("facts", {})
    if (out_dir / "compose").is_dir():
        probs += check_compose(out_dir)
    if (out_dir / "kubernetes").is_dir():
        probs += check_kubernetes(out_dir)
    probs += check_redis(out_dir) + check_postgres(out_dir, facts) + check_traefik(out_dir)
    probs += check_grafana(out_dir) + check_prometheus(out_dir) + check_secrets(out_dir)
    return probs
