"""Static checks over the stack as a whole: exposure, secrets, TLS, logs, queue Redis, Postgres budget,
shutdown grace, replicas and rate limits (compose and Kubernetes)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.flatten import traefik_settings
from schedgen_ops.ops.readiness.inspect import (
    LONG_RUNNING_KINDS,
    as_int,
    configmaps,
    container_env,
    containers,
    duration_s,
    is_one_shot,
    pod_template,
    pod_templates,
    role,
    service_env,
    service_role,
    workload_role,
)
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable
from schedgen_ops.ops.readiness.registry import check
from schedgen_ops.ops.readiness.supervisor import SUPERVISORD_CONF, Program, programs
from schedgen_ops.ops.readiness.tree import Manifest, RenderedTree
from schedgen_ops.service.settings import ServiceSettings

SECRET_KEY = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIALS?)$", re.I)
URL_CREDENTIALS = re.compile(r"^[a-z][a-z0-9+.-]*://[^:/@\s]*:([^@\s]+)@", re.I)
_INTERPOLATED = re.compile(r"^\$\{[^}]+\}$|^\$[A-Za-z_][A-Za-z0-9_]*$")


def _local_programs(ctx: Context) -> list[Program]:
    return programs(ctx.static_tree()) if ctx.has_local() else []


def _default(field: str) -> Any:
    return ServiceSettings.model_fields[field].default


def _need_any(ctx: Context) -> None:
    if not ctx.has_compose() and not ctx.has_kubernetes() and not ctx.has_local():
        raise NotApplicable("no compose, Kubernetes or local output in scope")


def _sev(tree: RenderedTree, name: str, *path: str, value: Any = None) -> Evidence:
    return Evidence(tree.compose_origin("services", name, *path), ".".join(("services", name, *path)), value)


def _mev(manifest: Manifest, path: str, value: Any = None) -> Evidence:
    return Evidence(manifest.file, f"{manifest.ref}: {path}", value)


def _loopback_bind(port: Any) -> bool:
    """A published port bound to a loopback address (compose long or short syntax)."""
    if isinstance(port, dict):
        host = str(port.get("host_ip") or "")
    else:
        parts = str(port).rsplit(":", 2)
        host = parts[0] if len(parts) == 3 else ""
    return host.strip("[]") in ("127.0.0.1", "::1", "localhost")


# --- exposure --------------------------------------------------------------------------------------


@check(
    "only-proxy-publishes",
    title="Only the reverse proxy publishes ports",
    category="security",
    severity="danger",
    kind="static",
    why="A published database or Redis port is reachable from the internet; every request must pass Traefik.",
    fix="Remove `ports:` from every service but traefik in the production model (use !reset in the overlay); "
    "with edge.enabled false, bind edge.api_bind to 127.0.0.1 (or the proxy's private address).",
)
def check_only_proxy_publishes(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    if ctx.has_compose():
        tree = ctx.compose()
        services = tree.services()
        has_proxy = any(service_role(n, s or {}) == "proxy" for n, s in services.items())
        for name, svc in services.items():
            ports = (svc or {}).get("ports") or []
            if not ports:
                continue
            role_ = service_role(name, svc)
            # Edge off: the api is the front door, for a proxy on this host, so only on loopback.
            behind_proxy = not has_proxy and role_ == "api" and all(_loopback_bind(p) for p in ports)
            ok = role_ == "proxy" or behind_proxy
            what = f"{name} publishes {ports}"
            if not ok and not has_proxy and role_ == "api":
                what += " on all interfaces with the edge off (nothing filters or rate-limits it)"
            out.append(Finding(ok, what, _sev(tree, name, "ports", value=ports)))
        if not out:
            out.append(
                Finding(
                    False,
                    "no service publishes a port (the proxy should)",
                    Evidence("compose", "services", None),
                )
            )
    for manifest in ctx.manifests():
        if manifest.kind == "Service":
            kind = (manifest.doc.get("spec") or {}).get("type", "ClusterIP")
            if kind in ("NodePort", "LoadBalancer"):
                ok = role(manifest.name) == "proxy"
                out.append(Finding(ok, f"{manifest.ref} is {kind}", _mev(manifest, "spec.type", kind)))
        tmpl = pod_template(manifest)
        if tmpl is not None:
            for path, container in containers(tmpl):
                for index, port in enumerate(container.get("ports") or []):
                    if port.get("hostPort"):
                        msg = f"{manifest.ref} container {container.get('name')} hostPort {port['hostPort']}"
                        out.append(
                            Finding(
                                False,
                                msg,
                                _mev(manifest, f"{path}.ports[{index}].hostPort", port["hostPort"]),
                            )
                        )
    if ctx.has_kubernetes() and not any(m.kind in ("Ingress", "IngressRoute") for m in ctx.manifests()):
        out.append(
            Finding(False, "no Ingress routes traffic to the api", Evidence("kubernetes", "Ingress", None))
        )
    return out


# --- secrets ---------------------------------------------------------------------------------------


def _secret_files(tree: RenderedTree) -> set[str]:
    """Files that may hold secret values: compose secrets, secretGenerator inputs, */secrets/ files."""
    allowed = {rel for rel in tree.files("**/*") if "secret" in rel.lower()}
    if tree.has_compose:
        for spec in (tree.compose.get("secrets") or {}).values():
            if isinstance(spec, dict) and spec.get("file"):
                allowed.add(str((Path("compose") / str(spec["file"])).as_posix()))
    for rel, kustomization in tree.kustomizations():
        base = Path(rel).parent
        for gen in kustomization.get("secretGenerator") or []:
            for entry in [*(gen.get("envs") or []), *(gen.get("files") or [])]:
                allowed.add((base / str(entry).split("=")[-1]).as_posix())
    return {str(Path(p)).replace("\\", "/") for p in allowed} | {_norm(p) for p in allowed}


def _norm(rel: str) -> str:
    parts: list[str] = []
    for part in rel.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/".join(parts)


def _literal_secret(key: str, value: Any) -> bool:
    text = "" if value is None else str(value).strip()
    if not text or _INTERPOLATED.match(text) or text.startswith("/run/secrets/"):
        return False
    if key.upper().endswith("_FILE"):
        return False
    match = URL_CREDENTIALS.match(text)
    if match:
        return not _INTERPOLATED.match(match.group(1))
    return bool(SECRET_KEY.search(key))


@check(
    "no-literal-secrets",
    title="No literal secret outside the secrets file",
    category="security",
    severity="danger",
    kind="static",
    why="Rendered files are committed, copied and attached to tickets; a password in them is a leaked "
    "password.",
    fix="Reference secrets (compose secrets/env_file, Kubernetes Secret refs) instead of writing values.",
)
def check_no_literal_secrets(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out: list[Finding] = []
    allowed = _secret_files(tree)
    values = {k: v for k, v in (ctx.secret_values or {}).items() if len(v) >= 8}
    scanned = 0
    for rel in tree.files("**/*"):
        if _norm(rel) in allowed:
            continue
        try:
            text = tree.text(rel)
        except UnicodeDecodeError:
            continue
        scanned += 1
        for name, value in values.items():
            if value in text:
                line = text[: text.index(value)].count("\n") + 1
                out.append(
                    Finding(
                        False,
                        f"{rel} contains the value of secret {name}",
                        Evidence(rel, f"line {line}", "<redacted>"),
                    )
                )
    if ctx.has_compose():
        for name, svc in tree.services().items():
            for key, value in _compose_env_literal(svc or {}).items():
                if _literal_secret(key, value):
                    out.append(
                        Finding(
                            False,
                            f"{name} sets {key} literally",
                            _sev(tree, name, "environment", key, value="<redacted>"),
                        )
                    )
            command = (svc or {}).get("command") or []
            args = command.split() if isinstance(command, str) else [str(a) for a in command]
            for index, arg in enumerate(args[:-1]):
                if arg in ("--requirepass", "--masterauth") and not _INTERPOLATED.match(args[index + 1]):
                    out.append(
                        Finding(
                            False,
                            f"{name} passes {arg} literally",
                            _sev(tree, name, "command", value="<redacted>"),
                        )
                    )
    for manifest in ctx.manifests():
        literal = manifest.doc.get("data") or manifest.doc.get("stringData")
        if manifest.kind == "Secret" and _norm(manifest.file) not in allowed and literal:
            msg = f"{manifest.ref} carries secret data in {manifest.file}"
            out.append(Finding(False, msg, _mev(manifest, "data", "<redacted>")))
        tmpl = pod_template(manifest)
        if tmpl is None:
            continue
        for path, container in containers(tmpl):
            for index, item in enumerate(container.get("env") or []):
                if "value" in item and _literal_secret(str(item.get("name", "")), item["value"]):
                    msg = (
                        f"{manifest.ref} container {container.get('name')} sets {item.get('name')} literally"
                    )
                    out.append(
                        Finding(False, msg, _mev(manifest, f"{path}.env[{index}].value", "<redacted>"))
                    )
    if not out:
        detail = f"{scanned} files scanned" + (f" for {len(values)} secret values" if values else "")
        out.append(Finding(True, f"no literal secrets ({detail})", Evidence(None, None, sorted(allowed))))
    return out


def _compose_env_literal(svc: dict[str, Any]) -> dict[str, Any]:
    from schedgen_ops.ops.readiness.tree import keyed

    return keyed(svc.get("environment"))


# --- TLS -------------------------------------------------------------------------------------------

_REDIRECT = re.compile(r"^entrypoints\.[^.]+\.http\.redirections\.entrypoint\.to$")
_REDIRECT_MW = re.compile(r"^http\.middlewares\.[^.]+\.redirectscheme\.scheme$")
_TLS = re.compile(r"^(entrypoints\.[^.]+\.http\.tls|http\.routers\.[^.]+\.tls)")


@check(
    "tls-redirect",
    title="TLS is terminated and HTTP redirects to HTTPS",
    category="security",
    severity="danger",
    kind="static",
    why="Students upload personal timetables; plain HTTP exposes them and API keys on the wire.",
    fix="Configure a TLS entrypoint (ACME) and redirect the web entrypoint to websecure in Traefik.",
)
def check_tls_redirect(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    tree = ctx.static_tree()
    out = []
    if ctx.has_compose():
        settings = traefik_settings(tree, compose=True)
        redirect = [
            (k, v)
            for k, v in settings.items()
            if _REDIRECT.match(k) or (_REDIRECT_MW.match(k) and v[1] == "https")
        ]
        tls = [(k, v) for k, v in settings.items() if _TLS.match(k) and v[1] not in (False, "false")]
        out.append(_first(redirect, "HTTP->HTTPS redirect", "traefik"))
        out.append(_first(tls, "TLS on a router or entrypoint", "traefik"))
    if ctx.has_kubernetes():
        ingresses = ctx.kubernetes().kinds("Ingress", "IngressRoute")
        for manifest in ingresses:
            spec = manifest.doc.get("spec") or {}
            ok = bool(spec.get("tls"))
            out.append(
                Finding(
                    ok,
                    f"{manifest.ref} tls {'set' if ok else 'missing'}",
                    _mev(manifest, "spec.tls", spec.get("tls")),
                )
            )
        redirects = [
            m
            for m in ctx.manifests()
            if m.kind == "Middleware"
            and ((m.doc.get("spec") or {}).get("redirectScheme") or {}).get("scheme") == "https"
        ]
        annotated = [
            m
            for m in ingresses
            if any(
                "redirect" in f"{k}={v}".lower()
                for k, v in ((m.doc.get("metadata") or {}).get("annotations") or {}).items()
            )
        ]
        if redirects or annotated:
            m = (redirects or annotated)[0]
            out.append(
                Finding(True, f"HTTP->HTTPS redirect by {m.ref}", _mev(m, "spec.redirectScheme", "https"))
            )
        else:
            # No redirect object: acceptable only when every Ingress is bound to the TLS entrypoint alone,
            # so plain HTTP never reaches the api (the controller's own redirect then applies).
            for m in ingresses:
                notes = (m.doc.get("metadata") or {}).get("annotations") or {}
                entrypoints = str(notes.get("traefik.ingress.kubernetes.io/router.entrypoints", ""))
                ok = entrypoints.strip() == "websecure"
                msg = (
                    f"{m.ref} entrypoints {entrypoints or '(all, incl. plain HTTP)'} and no redirect "
                    f"middleware"
                )
                key = "metadata.annotations.traefik.ingress.kubernetes.io/router.entrypoints"
                out.append(Finding(ok, msg, _mev(m, key, entrypoints or None)))
        if not ingresses:
            out.append(Finding(False, "no Ingress with TLS", Evidence("kubernetes", "Ingress", None)))
    return out


def _first(found: list[tuple[str, tuple[str, Any]]], what: str, where: str) -> Finding:
    if found:
        key, (file, value) = found[0]
        return Finding(True, f"{what}: {key}={value}", Evidence(file, key, value))
    return Finding(False, f"no {what} configured", Evidence(where, None, None))


# --- logs ------------------------------------------------------------------------------------------


@check(
    "log-rotation",
    title="Container logs are rotated",
    category="operations",
    severity="warning",
    kind="static",
    why="Docker's default json-file driver grows without bound until the disk (and Postgres) is full.",
    fix="Set `logging: {driver: json-file, options: {max-size: 10m, max-file: '5'}}` (or driver local).",
)
def check_log_rotation(ctx: Context) -> list[Finding]:
    if not ctx.has_compose():
        raise NotApplicable("log rotation is the kubelet's job on Kubernetes")
    tree = ctx.compose()
    out = []
    for name, svc in tree.services().items():
        logging = (svc or {}).get("logging") or {}
        driver = logging.get("driver", "json-file")
        options = logging.get("options") or {}
        ok = (
            driver not in ("json-file", "local")
            or driver == "local"
            or ("max-size" in options and "max-file" in options)
        )
        out.append(
            Finding(
                ok,
                f"{name} logging {driver} {options or ''}".strip(),
                _sev(tree, name, "logging", value=logging or None),
            )
        )
    return out


# --- queue Redis -----------------------------------------------------------------------------------


def parse_redis_conf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out[key.lower()] = value.strip().strip("'\"")
    return out


def _redis_args(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for index, arg in enumerate(args):
        if arg.startswith("--") and index + 1 < len(args):
            out[arg[2:].lower()] = args[index + 1].strip("'\"")
    return out


def _is_queue(name: str) -> bool:
    return "cache" not in name.lower()


def _redis_verdict(where: str, conf: dict[str, str], evidence: Evidence) -> list[Finding]:
    policy = conf.get("maxmemory-policy", "noeviction (default)")
    aof = conf.get("appendonly", "no (default)")
    return [
        Finding(policy.startswith("noeviction"), f"{where} maxmemory-policy {policy}", evidence),
        Finding(aof == "yes", f"{where} appendonly {aof}", evidence),
    ]


@check(
    "queue-redis-durable",
    title="Queue Redis never evicts and persists with AOF",
    category="reliability",
    severity="danger",
    kind="static",
    why="An evicting (allkeys-lru) or non-persistent queue Redis silently drops queued jobs under memory "
    "pressure or restart.",
    fix="Set `maxmemory-policy noeviction` and `appendonly yes` for the queue Redis "
    "(redis.maxmemory_policy).",
)
def check_queue_redis(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    tree = ctx.static_tree()
    out: list[Finding] = []
    files = {rel: parse_redis_conf(tree.text(rel)) for rel in tree.scoped("redis", "**/*.conf")}
    if ctx.has_compose():
        for name, svc in tree.services().items():
            svc = svc or {}
            if service_role(name, svc) != "redis" or not _is_queue(name):
                continue
            conf: dict[str, str] = {}
            source = tree.compose_origin("services", name, "command")
            mounts = " ".join(
                str(v.get("source", "")) if isinstance(v, dict) else str(v) for v in svc.get("volumes") or []
            )
            for rel, values in files.items():
                if Path(rel).name in mounts:
                    conf.update(values)
                    source = rel
            command = svc.get("command") or []
            args = command.split() if isinstance(command, str) else [str(a) for a in command]
            overrides = _redis_args(args)
            conf.update(overrides)
            if overrides:
                source = tree.compose_origin("services", name, "command")
            out += _redis_verdict(
                name,
                conf,
                Evidence(
                    source, f"services.{name}", {k: conf.get(k) for k in ("maxmemory-policy", "appendonly")}
                ),
            )
    if ctx.has_kubernetes():
        maps = configmaps(tree)
        for manifest in ctx.manifests():
            tmpl = pod_template(manifest)
            if tmpl is not None and workload_role(manifest) == "redis" and _is_queue(manifest.name):
                if "sentinel" in manifest.name.lower():
                    continue
                conf = {}
                for volume in tmpl.spec.get("volumes") or []:
                    for text in (maps.get(str((volume.get("configMap") or {}).get("name"))) or {}).values():
                        if "appendonly" in text or "maxmemory" in text:
                            conf.update(parse_redis_conf(text))
                for _, container in containers(tmpl, init=False):
                    if role(str(container.get("name", "")), str(container.get("image", ""))) == "redis":
                        argv = [*(container.get("command") or []), *(container.get("args") or [])]
                        conf.update(_redis_args([str(a) for a in argv]))
                ev = _mev(manifest, tmpl.path, {k: conf.get(k) for k in ("maxmemory-policy", "appendonly")})
                out += _redis_verdict(manifest.ref, conf, ev)
            elif (
                manifest.kind.startswith("Redis")
                and "Sentinel" not in manifest.kind
                and manifest.doc.get("spec")
            ):
                # Operator resources: spotahome RedisFailover (spec.redis.customConfig lines) or
                # OT-container-kit Redis/RedisReplication (additionalRedisConfig names a ConfigMap).
                spec = manifest.doc.get("spec") or {}
                custom = (spec.get("redis") or {}).get("customConfig") or []
                conf = parse_redis_conf("\n".join(str(line) for line in custom))
                path = "spec.redis.customConfig"
                extra = (spec.get("redisConfig") or {}).get("additionalRedisConfig")
                if extra:
                    for text in (maps.get(str(extra)) or {}).values():
                        conf.update(parse_redis_conf(text))
                    path = f"spec.redisConfig.additionalRedisConfig ({extra})"
                ev = _mev(manifest, path, {k: conf.get(k) for k in ("maxmemory-policy", "appendonly")})
                out += _redis_verdict(manifest.ref, conf, ev)
    for program in _local_programs(ctx):
        if role(program.name) == "redis" and _is_queue(program.name):
            conf = _redis_args(program.argv)
            ev = Evidence(
                SUPERVISORD_CONF,
                f"{program.where}.command",
                {k: conf.get(k) for k in ("maxmemory-policy", "appendonly")},
            )
            out += _redis_verdict(f"local {program.name}", conf, ev)
    if not out:
        raise NotApplicable("no queue Redis in the rendered output")
    return out


# --- Postgres connection budget --------------------------------------------------------------------


def _pg_settings(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, _, value = line.partition("=")
            out[key.strip().lower()] = value.strip().strip("'\"")
    return out


def _pg_args(args: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for index, arg in enumerate(args):
        value = None
        if arg == "-c" and index + 1 < len(args):
            value = args[index + 1]
        elif (arg.startswith("-c") and "=" in arg) or (arg.startswith("--") and "=" in arg):
            value = arg[2:]
        if value and "=" in value:
            key, _, val = value.partition("=")
            out[key.strip().lower().replace("-", "_")] = val.strip()
    return out


def _pool_demand(env: dict[str, str], who: str) -> tuple[int, int, int]:
    """(processes per replica, pool max per process, connections per replica)."""
    pool = as_int(env.get("SCHEDGEN_DB_POOL_MAX")) or int(_default("db_pool_max"))
    if who == "api":
        procs = as_int(env.get("SCHEDGEN_API_WORKERS")) or int(_default("api_workers"))
    elif who == "worker":
        procs = as_int(env.get("SCHEDGEN_WORKER_PROCESSES")) or int(_default("worker_processes"))
    else:
        procs = 1
    return procs, pool, procs * pool


def _uses_db(env: dict[str, str]) -> bool:
    return (
        "SCHEDGEN_DATABASE_URL" in env or "SCHEDGEN_DB_POOL_MAX" in env or "SCHEDGEN_DATABASE_URL_FILE" in env
    )


def _budget_finding(
    where: str, demand: list[tuple[str, int, int]], conf: dict[str, str], evidence: Evidence
) -> Finding:
    max_conn = as_int(conf.get("max_connections")) or 100
    reserved = as_int(conf.get("superuser_reserved_connections"))
    reserved = 3 if reserved is None else reserved
    need = sum(replicas * per for _, replicas, per in demand)
    breakdown = ", ".join(f"{n} {r}x{p}" for n, r, p in demand)
    ok = need <= max_conn - reserved
    msg = f"{where}: pools need {need} ({breakdown}) of max_connections {max_conn} - {reserved} reserved"
    return Finding(
        ok,
        msg,
        Evidence(
            evidence.file, evidence.path, {"max_connections": max_conn, "reserved": reserved, "demand": need}
        ),
    )


def _scale_ceiling(ctx: Context, who: str) -> int:
    """The most replicas `schedgen scale` allows for api/worker (the config's max_replicas), else 0."""
    section = {"api": "api", "worker": "worker"}.get(who)
    value = getattr(getattr(ctx.config, section, None), "max_replicas", None) if section else None
    return value if isinstance(value, int) else 0


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


@check(
    "postgres-connection-budget",
    title="Postgres max_connections covers every pool at maximum scale",
    category="scalability",
    severity="danger",
    kind="static",
    why="When autoscaling adds replicas past the budget, new pools fail to connect exactly when load peaks.",
    fix="Raise postgres max_connections (or lower db_pool_max / maximum replicas) so the sum fits with a "
    "reserve.",
)
def check_postgres_budget(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    tree = ctx.static_tree()
    out = []
    conf_files: dict[str, str] = {}
    for rel in tree.scoped("postgres", "**/*.conf"):
        conf_files.update(_pg_settings(tree.text(rel)))
    if ctx.has_compose():
        services = tree.services()
        pg = [(n, s or {}) for n, s in services.items() if service_role(n, s or {}) == "postgres"]
        if pg:
            name, svc = pg[0]
            command = svc.get("command") or []
            conf = {
                **conf_files,
                **_pg_args(command.split() if isinstance(command, str) else [str(a) for a in command]),
            }
            demand = []
            for sname, s in services.items():
                s = s or {}
                env = service_env(tree, s)
                if not _uses_db(env) or is_one_shot(s):
                    continue
                replicas = as_int((s.get("deploy") or {}).get("replicas")) or 1
                # `schedgen scale` may go up to the profile's max_replicas on compose too.
                replicas = max(replicas, _scale_ceiling(ctx, service_role(sname, s)))
                _, _, per = _pool_demand(env, service_role(sname, s))
                demand.append((sname, replicas, per))
            out.append(_budget_finding("compose", demand, conf, _sev(tree, name, "command", value=None)))
    if ctx.has_kubernetes():
        manifests = ctx.manifests()
        scalers = autoscale_max(manifests)
        conf = {}
        for rel in tree.scoped("postgres", "**/*.conf", scope="kubernetes"):
            conf.update(_pg_settings(tree.text(rel)))
        maps = configmaps(tree)
        source: Manifest | None = None
        for m in manifests:
            params = ((m.doc.get("spec") or {}).get("postgresql") or {}).get("parameters") or {}
            if m.kind == "Cluster" and params:
                conf.update({str(k).lower(): str(v) for k, v in params.items()})
                source = m
            tmpl = pod_template(m)
            if tmpl is not None and workload_role(m) == "postgres":
                for volume in tmpl.spec.get("volumes") or []:
                    for text in (maps.get(str((volume.get("configMap") or {}).get("name"))) or {}).values():
                        conf.update(_pg_settings(text))
                for _, container in containers(tmpl, init=False):
                    conf.update(
                        _pg_args(
                            [
                                str(a)
                                for a in [*(container.get("command") or []), *(container.get("args") or [])]
                            ]
                        )
                    )
                source = source or m
        if source is None:
            raise NotApplicable("no Postgres in the Kubernetes output")
        demand = []
        for tmpl in pod_templates(ctx.kubernetes(), *LONG_RUNNING_KINDS):
            m = tmpl.manifest
            for _, container in containers(tmpl, init=False):
                env = container_env(tree, container)
                if not _uses_db(env):
                    continue
                k8s_replicas: int | None = (
                    scalers[m.name][1]
                    if m.name in scalers
                    else as_int((m.doc.get("spec") or {}).get("replicas")) or 1
                )
                _, _, per = _pool_demand(env, workload_role(m))
                demand.append((m.name, k8s_replicas or 1, per))
        out.append(_budget_finding("kubernetes", demand, conf, _mev(source, "max_connections")))
    local = _local_programs(ctx)
    local_pg = [p for p in local if role(p.name) == "postgres"]
    if local_pg:
        conf = _pg_args(local_pg[0].argv)
        # One program slot per possible replica (api-1..api-N): the slots are the maximum scale.
        slots: dict[tuple[str, int], int] = {}
        for p in local:
            # Blue/green slots (api-blue-N, api-green-N): the second colour only overlaps during a deploy.
            if _uses_db(p.env) and "-green-" not in p.name:
                key = (re.sub(r"-\d+$", "", p.name), _pool_demand(p.env, role(p.name))[2])
                slots[key] = slots.get(key, 0) + 1
        demand = [(name, count, per) for (name, per), count in slots.items()]
        out.append(
            _budget_finding("local", demand, conf, Evidence(SUPERVISORD_CONF, f"{local_pg[0].where}.command"))
        )
    if not out:
        raise NotApplicable("no Postgres in the rendered output")
    return out


# --- worker shutdown -------------------------------------------------------------------------------


@check(
    "worker-stop-grace",
    title="Worker stop grace period exceeds the job timeout",
    category="reliability",
    severity="danger",
    kind="static",
    why="A worker killed before its job finishes turns every deploy into retried (or lost) parses.",
    fix="Set stop_grace_period / terminationGracePeriodSeconds above job_timeout_s (plus margin).",
)
def check_worker_stop_grace(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    if ctx.has_compose():
        tree = ctx.compose()
        for name, svc in tree.services().items():
            svc = svc or {}
            if service_role(name, svc) != "worker":
                continue
            senv = service_env(tree, svc)
            timeout = as_int(senv.get("SCHEDGEN_JOB_TIMEOUT_S")) or int(_default("job_timeout_s"))
            grace = duration_s(svc.get("stop_grace_period", "10s")) or 10.0
            msg = f"{name} stop_grace_period {grace:g}s vs job timeout {timeout}s"
            out.append(
                Finding(
                    grace > timeout,
                    msg,
                    _sev(tree, name, "stop_grace_period", value=svc.get("stop_grace_period")),
                )
            )
    if ctx.has_kubernetes():
        tree = ctx.kubernetes()
        for tmpl in pod_templates(tree, *LONG_RUNNING_KINDS):
            if workload_role(tmpl.manifest) != "worker":
                continue
            env: dict[str, str] = {}
            for _, container in containers(tmpl, init=False):
                env.update(container_env(tree, container))
            timeout = as_int(env.get("SCHEDGEN_JOB_TIMEOUT_S")) or int(_default("job_timeout_s"))
            grace = as_int(tmpl.spec.get("terminationGracePeriodSeconds", 30)) or 30
            msg = f"{tmpl.manifest.ref} terminationGracePeriodSeconds {grace} vs job timeout {timeout}s"
            out.append(
                Finding(
                    grace > timeout,
                    msg,
                    _mev(tmpl.manifest, f"{tmpl.path}.terminationGracePeriodSeconds", grace),
                )
            )
    for program in _local_programs(ctx):
        if role(program.name) == "worker":
            timeout = as_int(program.env.get("SCHEDGEN_JOB_TIMEOUT_S")) or int(_default("job_timeout_s"))
            msg = f"local {program.name} stopwaitsecs {program.stopwaitsecs} vs job timeout {timeout}s"
            ev = Evidence(SUPERVISORD_CONF, f"{program.where}.stopwaitsecs", program.stopwaitsecs)
            out.append(Finding(program.stopwaitsecs > timeout, msg, ev))
    if not out:
        raise NotApplicable("no worker in the rendered output")
    return out


# --- replicas --------------------------------------------------------------------------------------


@check(
    "min-replicas",
    title="At least 2 api and 2 worker replicas (medium and large)",
    category="reliability",
    severity="danger",
    kind="static",
    why="With one replica every deploy, crash or node drain is an outage.",
    fix="Set api/worker replicas (or autoscaling minimums) to 2 or more in the profile.",
)
def check_min_replicas(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    if ctx.profile is None:
        raise NotApplicable("profile unknown (pass --profile)")
    if ctx.profile == "small":
        raise NotApplicable("the small profile runs single replicas by design")
    out = []
    if ctx.has_compose():
        tree = ctx.compose()
        for name, svc in tree.services().items():
            svc = svc or {}
            if service_role(name, svc) in ("api", "worker") and not is_one_shot(svc):
                replicas = as_int((svc.get("deploy") or {}).get("replicas")) or 1
                out.append(
                    Finding(
                        replicas >= 2,
                        f"{name} replicas {replicas}",
                        _sev(tree, name, "deploy", "replicas", value=replicas),
                    )
                )
    if ctx.has_kubernetes():
        manifests = ctx.manifests()
        scalers = autoscale_max(manifests)
        for m in manifests:
            if m.kind in ("Deployment", "StatefulSet") and workload_role(m) in ("api", "worker"):
                if m.name in scalers:
                    low, _, scaler = scalers[m.name]
                    out.append(
                        Finding(
                            (low or 0) >= 2,
                            f"{m.ref} autoscales from {low}",
                            _mev(scaler, "spec.minReplicas", low),
                        )
                    )
                else:
                    replicas = as_int((m.doc.get("spec") or {}).get("replicas", 1)) or 0
                    out.append(
                        Finding(
                            replicas >= 2, f"{m.ref} replicas {replicas}", _mev(m, "spec.replicas", replicas)
                        )
                    )
    return out


# --- rate limits -----------------------------------------------------------------------------------

_RATELIMIT = re.compile(r"^http\.middlewares\.([^.]+)\.ratelimit\.average$")


@check(
    "rate-limits",
    title="Edge and per-client rate limits are set",
    category="security",
    severity="danger",
    kind="static",
    why="Without limits one client (or a loop) fills the queue for every student.",
    fix="Attach a Traefik rateLimit middleware to the api router and keep the service's rate_* settings "
    "valid.",
)
def check_rate_limits(ctx: Context) -> list[Finding]:
    from limits import parse_many

    _need_any(ctx)
    tree = ctx.static_tree()
    out: list[Finding] = []
    if ctx.has_compose():
        settings = traefik_settings(tree, compose=True)
        limits_found = {m.group(1): settings[k] for k in settings if (m := _RATELIMIT.match(k))}
        active = {n: v for n, v in limits_found.items() if (as_int(v[1]) or 0) > 0}
        attached = [
            (k, v)
            for k, v in settings.items()
            if re.match(r"^http\.routers\.[^.]+\.middlewares", k) and any(n in str(v[1]) for n in active)
        ]
        if active and attached:
            key, (file, value) = attached[0]
            out.append(
                Finding(True, f"edge rate limit {sorted(active)} on {key}", Evidence(file, key, value))
            )
        else:
            what = (
                "no rateLimit middleware"
                if not active
                else f"rateLimit {sorted(active)} not attached to a router"
            )
            out.append(Finding(False, f"traefik: {what}", Evidence("traefik", "http.middlewares", None)))
        for name, svc in tree.services().items():
            if service_role(name, svc or {}) == "api":
                env = service_env(tree, svc or {})
                out += _app_limits(name, env, _sev(tree, name, "environment"), parse_many)
    if ctx.has_kubernetes():
        manifests = ctx.manifests()
        mws = [
            m
            for m in manifests
            if m.kind == "Middleware" and ((m.doc.get("spec") or {}).get("rateLimit") or {}).get("average")
        ]
        refs = " ".join(str(m.doc) for m in manifests if m.kind in ("Ingress", "IngressRoute"))
        attached_mw = [m for m in mws if m.name in refs]
        if attached_mw:
            mw = attached_mw[0]
            out.append(
                Finding(
                    True,
                    f"edge rate limit {mw.ref}",
                    _mev(mw, "spec.rateLimit", (mw.doc.get("spec") or {}).get("rateLimit")),
                )
            )
        else:
            out.append(
                Finding(
                    False,
                    "no rateLimit Middleware attached to the Ingress",
                    Evidence("kubernetes", "Middleware", None),
                )
            )
        for tmpl in pod_templates(ctx.kubernetes(), *LONG_RUNNING_KINDS):
            if workload_role(tmpl.manifest) == "api":
                env = {}
                for _, container in containers(tmpl, init=False):
                    env.update(container_env(tree, container))
                out += _app_limits(tmpl.manifest.ref, env, _mev(tmpl.manifest, tmpl.path), parse_many)
    return out


def _app_limits(where: str, env: dict[str, str], evidence: Evidence, parse_many: Any) -> list[Finding]:
    out = []
    for field in ("rate_uploads", "rate_status", "rate_requests"):
        key = f"SCHEDGEN_{field.upper()}"
        value = env.get(key, str(_default(field)))
        try:
            ok = bool(parse_many(value))
        except ValueError:
            ok = False
        origin = "" if key in env else " (service default)"
        out.append(
            Finding(
                ok, f"{where} {key}={value}{origin}", Evidence(evidence.file, f"{evidence.path}.{key}", value)
            )
        )
    return out
