"""Per-container static checks over compose services and Kubernetes pod templates (Polaris style).

Each check is a judge of one service and one container; `evidence.per_workload` (or `per_service` and
`per_container`) runs it over everything in scope, and ``needs=`` on `check` says what must be in scope.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import (
    Verdict,
    compose_services,
    container_label,
    per_container,
    per_service,
    per_template,
    per_workload,
)
from schedgen_ops.ops.readiness.inspect import LONG_RUNNING_KINDS, PodTemplate, is_one_shot, pod_template
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check

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

Container = dict[str, Any]


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


def _service_image(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    image = str(svc.get("image", ""))
    if not image and svc.get("build"):
        yield Verdict(False, f"{name} is built, not pulled by a pinned tag", "build")
    else:
        yield Verdict(image_pinned(image), f"{name} image {image or '(none)'}", "image", image)


def _container_image(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    image = str(container.get("image", ""))
    yield Verdict(image_pinned(image), f"{tmpl.manifest.ref} image {image}", f"{path}.image", image)


@check(
    "image-pinned",
    title="Every image has a pinned tag or digest",
    category="reliability",
    severity="danger",
    kind="static",
    why="`latest` or an untagged image changes under you: a restart can deploy code nobody tested.",
    fix="Pin each image to a version tag (or @sha256 digest) in the profile's image settings.",
    needs="compose-or-kubernetes",
)
def check_image_pinned(ctx: Context) -> list[Finding]:
    out = per_service(ctx, _service_image)
    for manifest in ctx.manifests():
        if pod_template(manifest) is None and "/" in str(manifest.doc.get("apiVersion", "")):
            # Operator resources (CloudNativePG Cluster, Redis, MinIO Tenant) name their images too.
            for key, value in _image_fields(manifest.doc.get("spec") or {}, "spec"):
                msg = f"{manifest.ref} {key} {value}"
                ev = Evidence(manifest.file, f"{manifest.ref}: {key}", value)
                out.append(Finding(image_pinned(str(value)), msg, ev))
    return out + per_container(ctx, _container_image)


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


def _service_healthcheck(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    hc = svc.get("healthcheck")
    ok = (
        isinstance(hc, dict) and not hc.get("disable") and bool(hc.get("test")) and hc.get("test") != ["NONE"]
    )
    yield Verdict(ok, f"{name} healthcheck {'set' if ok else 'missing'}", "healthcheck", hc)


def _container_probes(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    for probe in ("readinessProbe", "livenessProbe"):
        value = container.get(probe)
        ok = bool(value)
        msg = f"{container_label(tmpl, container)} {probe} {'set' if ok else 'missing'}"
        yield Verdict(ok, msg, f"{path}.{probe}", value)


@check(
    "healthchecks",
    title="Every long-running service has a healthcheck / readiness and liveness probes",
    category="reliability",
    severity="danger",
    kind="static",
    why="Without health, restarts, rollouts and depends_on act on processes that are up but not working.",
    fix="Give each compose service a healthcheck using a tool its image has, and each container probes.",
    needs="compose-or-kubernetes",
)
def check_healthchecks(ctx: Context) -> list[Finding]:
    return per_service(ctx, _service_healthcheck, long_running=True) + per_container(
        ctx, _container_probes, *LONG_RUNNING_KINDS, init=False
    )


def _probe_target(probe: dict[str, Any]) -> Any:
    for key in ("httpGet", "exec", "tcpSocket", "grpc"):
        if key in probe:
            return {key: probe[key]}
    return probe


def _container_distinct_probes(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    live, ready = container.get("livenessProbe"), container.get("readinessProbe")
    if live and ready:
        ok = _probe_target(live) != _probe_target(ready)
        msg = f"{container_label(tmpl, container)} probes {'differ' if ok else 'identical'}"
        yield Verdict(ok, msg, f"{path}.livenessProbe", _probe_target(live))


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
    return per_container(ctx, _container_distinct_probes, *LONG_RUNNING_KINDS, init=False)


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
    services = {name: svc for _, name, svc in compose_services(ctx)}

    def service(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {dep: {"condition": "service_started"} for dep in deps}
        for dep, spec in deps.items():
            target = services.get(dep) or {}
            if not target.get("healthcheck") or is_one_shot(target):
                continue
            cond = (spec or {}).get("condition", "service_started")
            yield Verdict(cond == "service_healthy", f"{name} -> {dep}: {cond}", ("depends_on", dep), cond)

    return per_service(ctx, service)


def _compose_limits(svc: dict[str, Any]) -> tuple[Any, Any]:
    res = (svc.get("deploy") or {}).get("resources") or {}
    limits, reservations = res.get("limits") or {}, res.get("reservations") or {}
    return limits.get("memory") or svc.get("mem_limit"), reservations.get("memory") or svc.get(
        "mem_reservation"
    )


def _service_limit(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    limit, _ = _compose_limits(svc)
    yield Verdict(bool(limit), f"{name} memory limit {limit}", ("deploy", "resources", "limits"), limit)


def _container_limit(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    limit = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    msg = f"{container_label(tmpl, container)} memory limit {limit}"
    yield Verdict(bool(limit), msg, f"{path}.resources.limits.memory", limit)


@check(
    "resource-limits",
    title="Every container has a memory limit",
    category="reliability",
    severity="danger",
    kind="static",
    why="One leaking process without a limit takes the whole host (and Postgres with it) into the OOM "
    "killer.",
    fix="Set memory limits from the profile (compose deploy.resources.limits, k8s resources.limits).",
    needs="compose-or-kubernetes",
)
def check_resource_limits(ctx: Context) -> list[Finding]:
    return per_workload(ctx, _service_limit, _container_limit, init=False)


def _service_reservation(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    _, reservation = _compose_limits(svc)
    where = ("deploy", "resources", "reservations")
    yield Verdict(bool(reservation), f"{name} memory reservation {reservation}", where, reservation)


def _container_requests(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    req = (container.get("resources") or {}).get("requests") or {}
    ok = bool(req.get("cpu")) and bool(req.get("memory"))
    yield Verdict(
        ok,
        f"{container_label(tmpl, container)} requests {req or 'missing'}",
        f"{path}.resources.requests",
        req,
    )


@check(
    "resource-requests",
    title="Every container reserves CPU and memory",
    category="scalability",
    severity="warning",
    kind="static",
    why="Without requests the scheduler packs pods blindly and the HPA cannot compute utilisation.",
    fix="Set reservations/requests for cpu and memory from the profile.",
    needs="compose-or-kubernetes",
)
def check_resource_requests(ctx: Context) -> list[Finding]:
    return per_workload(ctx, _service_reservation, _container_requests, init=False)


def _service_restart(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    restart = svc.get("restart")
    condition = ((svc.get("deploy") or {}).get("restart_policy") or {}).get("condition")
    ok = restart in ("always", "unless-stopped", "on-failure") or condition in ("any", "on-failure")
    yield Verdict(ok, f"{name} restart {restart or condition}", "restart", restart or condition)


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
    return per_service(ctx, _service_restart, long_running=True)


def _service_logging(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    logging = svc.get("logging") or {}
    driver = logging.get("driver", "json-file")
    options = logging.get("options") or {}
    ok = (
        driver not in ("json-file", "local")
        or driver == "local"
        or ("max-size" in options and "max-file" in options)
    )
    yield Verdict(ok, f"{name} logging {driver} {options or ''}".strip(), "logging", logging or None)


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
    return per_service(ctx, _service_logging)


def _k8s_sc(tmpl: PodTemplate, container: Container, key: str) -> Any:
    """A securityContext field, container level overriding pod level."""
    csc = container.get("securityContext") or {}
    if key in csc:
        return csc[key]
    return (tmpl.spec.get("securityContext") or {}).get(key)


def _service_user(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    user = str(svc.get("user", "")).strip()
    ok = bool(user) and user.split(":")[0] not in ("root", "0")
    yield Verdict(ok, f"{name} user {user or '(image default)'}", "user", user or None)


def _container_user(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    non_root, uid = _k8s_sc(tmpl, container, "runAsNonRoot"), _k8s_sc(tmpl, container, "runAsUser")
    ok = uid != 0 and (non_root is True or (isinstance(uid, int) and uid > 0))
    msg = f"{container_label(tmpl, container)} runAsNonRoot={non_root} runAsUser={uid}"
    yield Verdict(ok, msg, f"{path}.securityContext", {"runAsNonRoot": non_root, "runAsUser": uid})


@check(
    "run-as-non-root",
    title="Containers run as a non-root user",
    category="security",
    severity="danger",
    kind="static",
    why="Root in a container is one kernel bug away from root on the host.",
    fix="Set `user:` in compose and runAsNonRoot/runAsUser in the securityContext.",
    needs="compose-or-kubernetes",
)
def check_run_as_non_root(ctx: Context) -> list[Finding]:
    return per_workload(ctx, _service_user, _container_user)


def _service_read_only(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    value = svc.get("read_only")
    yield Verdict(value is True, f"{name} read_only {value}", "read_only", value)


def _container_read_only(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    value = (container.get("securityContext") or {}).get("readOnlyRootFilesystem")
    msg = f"{container_label(tmpl, container)} readOnlyRootFilesystem={value}"
    yield Verdict(value is True, msg, f"{path}.securityContext.readOnlyRootFilesystem", value)


@check(
    "read-only-rootfs",
    title="Root filesystems are read-only",
    category="security",
    severity="warning",
    kind="static",
    why="A writable image lets an intruder persist tools and hides state that a restart should discard.",
    fix="Set `read_only: true` / readOnlyRootFilesystem and mount tmpfs or volumes where writes are needed.",
    needs="compose-or-kubernetes",
)
def check_read_only_rootfs(ctx: Context) -> list[Finding]:
    return per_workload(ctx, _service_read_only, _container_read_only)


def _service_caps(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    drop = [str(c).upper() for c in svc.get("cap_drop") or []]
    add = {str(c).upper().removeprefix("CAP_") for c in svc.get("cap_add") or []}
    bad = sorted(add & DANGEROUS_CAPS)
    msg = f"{name} cap_drop {drop or 'none'}" + (f", adds {bad}" if bad else "")
    yield Verdict("ALL" in drop and not bad, msg, "cap_drop", {"cap_drop": drop, "cap_add": sorted(add)})


def _container_caps(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    caps = (container.get("securityContext") or {}).get("capabilities") or {}
    drop = [str(c).upper() for c in caps.get("drop") or []]
    bad = sorted({str(c).upper().removeprefix("CAP_") for c in caps.get("add") or []} & DANGEROUS_CAPS)
    msg = f"{container_label(tmpl, container)} drop {drop or 'none'}" + (f", adds {bad}" if bad else "")
    yield Verdict("ALL" in drop and not bad, msg, f"{path}.securityContext.capabilities", caps)


@check(
    "capabilities-dropped",
    title="All capabilities dropped, none dangerous added back",
    category="security",
    severity="danger",
    kind="static",
    why="Default capabilities (NET_RAW, CHOWN, ...) are attack surface none of our processes need by "
    "default.",
    fix="Set `cap_drop: [ALL]` (capabilities.drop: [ALL]) and add back only the few an image needs.",
    needs="compose-or-kubernetes",
)
def check_capabilities(ctx: Context) -> list[Finding]:
    return per_workload(ctx, _service_caps, _container_caps)


def _service_privileges(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    opts = [str(o).replace("=", ":") for o in svc.get("security_opt") or []]
    nnp = "no-new-privileges:true" in opts or "no-new-privileges" in opts
    privileged = svc.get("privileged") is True
    msg = f"{name} privileged={privileged} no-new-privileges={nnp}"
    yield Verdict(
        nnp and not privileged, msg, "security_opt", {"privileged": privileged, "security_opt": opts}
    )


def _container_privileges(tmpl: PodTemplate, path: str, container: Container) -> Iterator[Verdict]:
    sc = container.get("securityContext") or {}
    ok = sc.get("privileged") is not True and sc.get("allowPrivilegeEscalation") is False
    msg = (
        f"{container_label(tmpl, container)} privileged={sc.get('privileged')} "
        f"allowPrivilegeEscalation={sc.get('allowPrivilegeEscalation')}"
    )
    yield Verdict(ok, msg, f"{path}.securityContext", sc)


@check(
    "no-privilege-escalation",
    title="No privileged containers, no privilege escalation",
    category="security",
    severity="danger",
    kind="static",
    why="A privileged container is the host; setuid escalation undoes dropping root.",
    fix="Never set privileged; set `security_opt: [no-new-privileges:true]` / allowPrivilegeEscalation: "
    "false.",
    needs="compose-or-kubernetes",
)
def check_no_privilege_escalation(ctx: Context) -> list[Finding]:
    return per_workload(ctx, _service_privileges, _container_privileges)


def _service_namespaces(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    shared = {k: svc.get(k) for k in ("network_mode", "pid", "ipc") if str(svc.get(k, "")) == "host"}
    yield Verdict(not shared, f"{name} host namespaces {shared or 'none'}", (), shared or None)


def _template_namespaces(tmpl: PodTemplate) -> Iterator[Verdict]:
    shared = {k: True for k in ("hostNetwork", "hostPID", "hostIPC") if tmpl.spec.get(k) is True}
    yield Verdict(
        not shared, f"{tmpl.manifest.ref} host namespaces {shared or 'none'}", tmpl.path, shared or None
    )


@check(
    "no-host-namespaces",
    title="No host network, PID or IPC namespace",
    category="security",
    severity="danger",
    kind="static",
    why="Sharing host namespaces exposes host processes and interfaces to the container.",
    fix="Remove network_mode/pid/ipc host (hostNetwork/hostPID/hostIPC).",
    needs="compose-or-kubernetes",
)
def check_no_host_namespaces(ctx: Context) -> list[Finding]:
    return per_service(ctx, _service_namespaces) + per_template(ctx, _template_namespaces)
