"""Per-container static checks over compose services and Kubernetes pod templates (Polaris style)."""

from __future__ import annotations

from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.inspect import (
    LONG_RUNNING_KINDS,
    PodTemplate,
    containers,
    is_one_shot,
    one_shot_names,
    pod_template,
    pod_templates,
)
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable
from schedgen_ops.ops.readiness.registry import check
from schedgen_ops.ops.readiness.tree import RenderedTree

DANGEROUS_CAPS = {
    "ALL",
    "SYS_ADMIN",
    "NET_ADMIN",
    "SYS_PTRACE",
    "SYS_MODULE",
    "SYS_RAWIO",
    "NET_RAW",
    "DAC_READ_SEARCH",
    "BPF",
    "PERFMON",
    "SYS_BOOT",
}


def _compose_services(
    ctx: Context, *, long_running: bool = False
) -> list[tuple[RenderedTree, str, dict[str, Any]]]:
    if not ctx.has_compose():
        return []
    tree = ctx.compose()
    services = tree.services()
    skip = one_shot_names(services) if long_running else set()
    return [(tree, name, svc or {}) for name, svc in services.items() if name not in skip]


def _templates(ctx: Context, *kinds: str) -> list[PodTemplate]:
    return pod_templates(ctx.kubernetes(), *kinds) if ctx.has_kubernetes() else []


def _need_any(ctx: Context) -> None:
    if not ctx.has_compose() and not ctx.has_kubernetes():
        raise NotApplicable("no compose or Kubernetes output in scope")


def _ev(tree: RenderedTree, name: str, *path: str, value: Any = None) -> Evidence:
    return Evidence(tree.compose_origin("services", name, *path), ".".join(("services", name, *path)), value)


def _kev(tmpl: PodTemplate, path: str, value: Any = None) -> Evidence:
    return Evidence(tmpl.manifest.file, f"{tmpl.manifest.ref}: {path}", value)


def image_pinned(image: str) -> bool:
    """A digest, or an explicit tag other than ``latest``."""
    if not image or "${" in image:
        return False
    if "@sha256:" in image:
        return True
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    return last.rsplit(":", 1)[1] not in ("", "latest")


@check(
    "image-pinned",
    title="Every image has a pinned tag or digest",
    category="reliability",
    severity="danger",
    kind="static",
    why="`latest` or an untagged image changes under you: a restart can deploy code nobody tested.",
    fix="Pin each image to a version tag (or @sha256 digest) in the profile's image settings.",
)
def check_image_pinned(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        image = str(svc.get("image", ""))
        if not image and svc.get("build"):
            out.append(
                Finding(False, f"{name} is built, not pulled by a pinned tag", _ev(tree, name, "build"))
            )
            continue
        ok = image_pinned(image)
        out.append(Finding(ok, f"{name} image {image or '(none)'}", _ev(tree, name, "image", value=image)))
    for manifest in ctx.manifests():
        if pod_template(manifest) is None and "/" in str(manifest.doc.get("apiVersion", "")):
            # Operator resources (CloudNativePG Cluster, Redis, MinIO Tenant) name their images too.
            for key, value in _image_fields(manifest.doc.get("spec") or {}, "spec"):
                msg = f"{manifest.ref} {key} {value}"
                ev = Evidence(manifest.file, f"{manifest.ref}: {key}", value)
                out.append(Finding(image_pinned(str(value)), msg, ev))
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl):
            image = str(container.get("image", ""))
            ok = image_pinned(image)
            out.append(Finding(ok, f"{tmpl.manifest.ref} image {image}", _kev(tmpl, f"{path}.image", image)))
    return out


def _image_fields(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, value) of every ``image``/``imageName`` string inside a custom resource's spec."""
    out: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("image", "imageName") and isinstance(item, str):
                out.append((f"{path}.{key}", item))
            else:
                out += _image_fields(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _image_fields(item, f"{path}[{index}]")
    return out


@check(
    "healthchecks",
    title="Every long-running service has a healthcheck / readiness and liveness probes",
    category="reliability",
    severity="danger",
    kind="static",
    why="Without health, restarts, rollouts and depends_on act on processes that are up but not working.",
    fix="Give each compose service a healthcheck using a tool its image has, and each container probes.",
)
def check_healthchecks(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx, long_running=True):
        hc = svc.get("healthcheck")
        ok = (
            isinstance(hc, dict)
            and not hc.get("disable")
            and bool(hc.get("test"))
            and hc.get("test") != ["NONE"]
        )
        out.append(
            Finding(
                ok,
                f"{name} healthcheck {'set' if ok else 'missing'}",
                _ev(tree, name, "healthcheck", value=hc),
            )
        )
    for tmpl in _templates(ctx, *LONG_RUNNING_KINDS):
        for path, container in containers(tmpl, init=False):
            for probe in ("readinessProbe", "livenessProbe"):
                value = container.get(probe)
                ok = bool(value)
                msg = (
                    f"{tmpl.manifest.ref} container {container.get('name')} {probe} "
                    f"{'set' if ok else 'missing'}"
                )
                out.append(Finding(ok, msg, _kev(tmpl, f"{path}.{probe}", value)))
    return out


def _probe_target(probe: dict[str, Any]) -> Any:
    for key in ("httpGet", "exec", "tcpSocket", "grpc"):
        if key in probe:
            return {key: probe[key]}
    return probe


@check(
    "probes-distinct",
    title="Liveness and readiness probes check different things",
    category="reliability",
    severity="warning",
    kind="static",
    why="A liveness probe that checks dependencies restarts every pod when Postgres blips; readiness must.",
    fix="Point liveness at the process-alive endpoint (/healthz) and readiness at /readyz.",
)
def check_probes_distinct(ctx: Context) -> list[Finding]:
    out = []
    for tmpl in _templates(ctx, *LONG_RUNNING_KINDS):
        for path, container in containers(tmpl, init=False):
            live, ready = container.get("livenessProbe"), container.get("readinessProbe")
            if not live or not ready:
                continue
            ok = _probe_target(live) != _probe_target(ready)
            msg = (
                f"{tmpl.manifest.ref} container {container.get('name')} probes "
                f"{'differ' if ok else 'identical'}"
            )
            out.append(Finding(ok, msg, _kev(tmpl, f"{path}.livenessProbe", _probe_target(live))))
    return out


@check(
    "depends-on-healthy",
    title="depends_on waits for healthy dependencies",
    category="reliability",
    severity="warning",
    kind="static",
    why="Starting the api before Postgres accepts connections turns every deploy into a crash loop.",
    fix="Use `depends_on: {postgres: {condition: service_healthy}}` for dependencies with healthchecks.",
)
def check_depends_on_healthy(ctx: Context) -> list[Finding]:
    out = []
    services = dict((name, svc) for _, name, svc in _compose_services(ctx))
    for tree, name, svc in _compose_services(ctx):
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dep, spec in deps.items():
            target = services.get(dep) or {}
            if not target.get("healthcheck") or is_one_shot(target):
                continue
            cond = (spec or {}).get("condition", "service_started")
            ok = cond == "service_healthy"
            out.append(
                Finding(ok, f"{name} -> {dep}: {cond}", _ev(tree, name, "depends_on", dep, value=cond))
            )
    return out


def _compose_limits(svc: dict[str, Any]) -> tuple[Any, Any]:
    res = (svc.get("deploy") or {}).get("resources") or {}
    limits, reservations = res.get("limits") or {}, res.get("reservations") or {}
    return limits.get("memory") or svc.get("mem_limit"), reservations.get("memory") or svc.get(
        "mem_reservation"
    )


@check(
    "resource-limits",
    title="Every container has a memory limit",
    category="reliability",
    severity="danger",
    kind="static",
    why="One leaking process without a limit takes the whole host (and Postgres with it) into the OOM "
    "killer.",
    fix="Set memory limits from the profile (compose deploy.resources.limits, k8s resources.limits).",
)
def check_resource_limits(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        limit, _ = _compose_limits(svc)
        out.append(
            Finding(
                bool(limit),
                f"{name} memory limit {limit}",
                _ev(tree, name, "deploy", "resources", "limits", value=limit),
            )
        )
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl, init=False):
            limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
            msg = f"{tmpl.manifest.ref} container {container.get('name')} memory limit {limit}"
            out.append(Finding(bool(limit), msg, _kev(tmpl, f"{path}.resources.limits.memory", limit)))
    return out


@check(
    "resource-requests",
    title="Every container reserves CPU and memory",
    category="scalability",
    severity="warning",
    kind="static",
    why="Without requests the scheduler packs pods blindly and the HPA cannot compute utilisation.",
    fix="Set reservations/requests for cpu and memory from the profile.",
)
def check_resource_requests(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        _, reservation = _compose_limits(svc)
        out.append(
            Finding(
                bool(reservation),
                f"{name} memory reservation {reservation}",
                _ev(tree, name, "deploy", "resources", "reservations", value=reservation),
            )
        )
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl, init=False):
            req = (container.get("resources") or {}).get("requests") or {}
            ok = bool(req.get("cpu")) and bool(req.get("memory"))
            msg = f"{tmpl.manifest.ref} container {container.get('name')} requests {req or 'missing'}"
            out.append(Finding(ok, msg, _kev(tmpl, f"{path}.resources.requests", req)))
    return out


@check(
    "restart-policy",
    title="Long-running compose services restart on failure",
    category="reliability",
    severity="danger",
    kind="static",
    why="A crashed worker that stays down silently halves throughput until someone notices.",
    fix="Set `restart: unless-stopped` (or deploy.restart_policy) on every long-running service.",
)
def check_restart_policy(ctx: Context) -> list[Finding]:
    if not ctx.has_compose():
        raise NotApplicable("restart policies are a compose concern (Kubernetes controllers always restart)")
    out = []
    for tree, name, svc in _compose_services(ctx, long_running=True):
        restart = svc.get("restart")
        condition = ((svc.get("deploy") or {}).get("restart_policy") or {}).get("condition")
        ok = restart in ("always", "unless-stopped", "on-failure") or condition in ("any", "on-failure")
        out.append(
            Finding(
                ok,
                f"{name} restart {restart or condition}",
                _ev(tree, name, "restart", value=restart or condition),
            )
        )
    return out


def _k8s_sc(tmpl: PodTemplate, container: dict[str, Any], key: str) -> Any:
    """A securityContext field, container level overriding pod level."""
    csc = container.get("securityContext") or {}
    if key in csc:
        return csc[key]
    return (tmpl.spec.get("securityContext") or {}).get(key)


@check(
    "run-as-non-root",
    title="Containers run as a non-root user",
    category="security",
    severity="danger",
    kind="static",
    why="Root in a container is one kernel bug away from root on the host.",
    fix="Set `user:` in compose and runAsNonRoot/runAsUser in the securityContext.",
)
def check_run_as_non_root(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        user = str(svc.get("user", "")).strip()
        ok = bool(user) and user.split(":")[0] not in ("root", "0")
        out.append(
            Finding(
                ok, f"{name} user {user or '(image default)'}", _ev(tree, name, "user", value=user or None)
            )
        )
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl):
            non_root, uid = _k8s_sc(tmpl, container, "runAsNonRoot"), _k8s_sc(tmpl, container, "runAsUser")
            ok = uid != 0 and (non_root is True or (isinstance(uid, int) and uid > 0))
            msg = (
                f"{tmpl.manifest.ref} container {container.get('name')} runAsNonRoot={non_root} "
                f"runAsUser={uid}"
            )
            out.append(
                Finding(
                    ok,
                    msg,
                    _kev(tmpl, f"{path}.securityContext", {"runAsNonRoot": non_root, "runAsUser": uid}),
                )
            )
    return out


@check(
    "read-only-rootfs",
    title="Root filesystems are read-only",
    category="security",
    severity="warning",
    kind="static",
    why="A writable image lets an intruder persist tools and hides state that a restart should discard.",
    fix="Set `read_only: true` / readOnlyRootFilesystem and mount tmpfs or volumes where writes are needed.",
)
def check_read_only_rootfs(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        ok = svc.get("read_only") is True
        out.append(
            Finding(
                ok,
                f"{name} read_only {svc.get('read_only')}",
                _ev(tree, name, "read_only", value=svc.get("read_only")),
            )
        )
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl):
            value = (container.get("securityContext") or {}).get("readOnlyRootFilesystem")
            msg = f"{tmpl.manifest.ref} container {container.get('name')} readOnlyRootFilesystem={value}"
            out.append(
                Finding(
                    value is True, msg, _kev(tmpl, f"{path}.securityContext.readOnlyRootFilesystem", value)
                )
            )
    return out


@check(
    "capabilities-dropped",
    title="All capabilities dropped, none dangerous added back",
    category="security",
    severity="danger",
    kind="static",
    why="Default capabilities (NET_RAW, CHOWN, ...) are attack surface none of our processes need by "
    "default.",
    fix="Set `cap_drop: [ALL]` (capabilities.drop: [ALL]) and add back only the few an image needs.",
)
def check_capabilities(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        drop = [str(c).upper() for c in svc.get("cap_drop") or []]
        add = {str(c).upper().removeprefix("CAP_") for c in svc.get("cap_add") or []}
        bad = sorted(add & DANGEROUS_CAPS)
        ok = "ALL" in drop and not bad
        msg = f"{name} cap_drop {drop or 'none'}" + (f", adds {bad}" if bad else "")
        out.append(
            Finding(ok, msg, _ev(tree, name, "cap_drop", value={"cap_drop": drop, "cap_add": sorted(add)}))
        )
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl):
            caps = (container.get("securityContext") or {}).get("capabilities") or {}
            drop = [str(c).upper() for c in caps.get("drop") or []]
            bad = sorted(
                {str(c).upper().removeprefix("CAP_") for c in caps.get("add") or []} & DANGEROUS_CAPS
            )
            ok = "ALL" in drop and not bad
            msg = f"{tmpl.manifest.ref} container {container.get('name')} drop {drop or 'none'}" + (
                f", adds {bad}" if bad else ""
            )
            out.append(Finding(ok, msg, _kev(tmpl, f"{path}.securityContext.capabilities", caps)))
    return out


@check(
    "no-privilege-escalation",
    title="No privileged containers, no privilege escalation",
    category="security",
    severity="danger",
    kind="static",
    why="A privileged container is the host; setuid escalation undoes dropping root.",
    fix="Never set privileged; set `security_opt: [no-new-privileges:true]` / allowPrivilegeEscalation: "
    "false.",
)
def check_no_privilege_escalation(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        opts = [str(o).replace("=", ":") for o in svc.get("security_opt") or []]
        nnp = "no-new-privileges:true" in opts or "no-new-privileges" in opts
        privileged = svc.get("privileged") is True
        ok = nnp and not privileged
        msg = f"{name} privileged={privileged} no-new-privileges={nnp}"
        out.append(
            Finding(
                ok,
                msg,
                _ev(tree, name, "security_opt", value={"privileged": privileged, "security_opt": opts}),
            )
        )
    for tmpl in _templates(ctx):
        for path, container in containers(tmpl):
            sc = container.get("securityContext") or {}
            ok = sc.get("privileged") is not True and sc.get("allowPrivilegeEscalation") is False
            msg = (
                f"{tmpl.manifest.ref} container {container.get('name')} privileged={sc.get('privileged')} "
                f"allowPrivilegeEscalation={sc.get('allowPrivilegeEscalation')}"
            )
            out.append(Finding(ok, msg, _kev(tmpl, f"{path}.securityContext", sc)))
    return out


@check(
    "no-host-namespaces",
    title="No host network, PID or IPC namespace",
    category="security",
    severity="danger",
    kind="static",
    why="Sharing host namespaces exposes host processes and interfaces to the container.",
    fix="Remove network_mode/pid/ipc host (hostNetwork/hostPID/hostIPC).",
)
def check_no_host_namespaces(ctx: Context) -> list[Finding]:
    _need_any(ctx)
    out = []
    for tree, name, svc in _compose_services(ctx):
        shared = {k: svc.get(k) for k in ("network_mode", "pid", "ipc") if str(svc.get(k, "")) == "host"}
        out.append(
            Finding(
                not shared,
                f"{name} host namespaces {shared or 'none'}",
                _ev(tree, name, value=shared or None),
            )
        )
    for tmpl in _templates(ctx):
        shared = {k: True for k in ("hostNetwork", "hostPID", "hostIPC") if tmpl.spec.get(k) is True}
        out.append(
            Finding(
                not shared,
                f"{tmpl.manifest.ref} host namespaces {shared or 'none'}",
                _kev(tmpl, tmpl.path, shared or None),
            )
        )
    return out
