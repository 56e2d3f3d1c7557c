"""Static checks that deploys, crashes and drains cause no outage and lose no job: api and worker replicas,
and a worker stop grace period longer than the job timeout (compose, Kubernetes and local)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import (
    Verdict,
    manifest_evidence,
    per_program,
    per_service,
    per_template,
)
from schedgen_ops.ops.readiness.inspect import (
    LONG_RUNNING_KINDS,
    PodTemplate,
    as_int,
    autoscale_max,
    duration_s,
    is_one_shot,
    role,
    service_default,
    service_env,
    service_role,
    template_env,
    workload_role,
)
from schedgen_ops.ops.readiness.model import Finding, NotApplicable, check
from schedgen_ops.ops.readiness.supervisor import Program

# --- worker shutdown -------------------------------------------------------------------------------


def _job_timeout(env: dict[str, str]) -> int:
    return as_int(env.get("SCHEDGEN_JOB_TIMEOUT_S")) or int(service_default("job_timeout_s"))


@check(
    "worker-stop-grace",
    title="Worker stop grace period exceeds the job timeout",
    category="reliability",
    severity="danger",
    kind="static",
    why="A worker killed before its job finishes turns every deploy into retried (or lost) parses.",
    fix="Set stop_grace_period / terminationGracePeriodSeconds above job_timeout_s (plus margin).",
    needs="any-runtime",
)
def check_worker_stop_grace(ctx: Context) -> list[Finding]:

    def service(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
        if service_role(name, svc) == "worker":
            timeout = _job_timeout(service_env(ctx.compose(), svc))
            grace = duration_s(svc.get("stop_grace_period", "10s")) or 10.0
            msg = f"{name} stop_grace_period {grace:g}s vs job timeout {timeout}s"
            yield Verdict(grace > timeout, msg, "stop_grace_period", svc.get("stop_grace_period"))

    def template(tmpl: PodTemplate) -> Iterator[Verdict]:
        if workload_role(tmpl.manifest) == "worker":
            timeout = _job_timeout(template_env(ctx.kubernetes(), tmpl))
            grace = as_int(tmpl.spec.get("terminationGracePeriodSeconds", 30)) or 30
            msg = f"{tmpl.manifest.ref} terminationGracePeriodSeconds {grace} vs job timeout {timeout}s"
            yield Verdict(grace > timeout, msg, f"{tmpl.path}.terminationGracePeriodSeconds", grace)

    def program(program: Program) -> Iterator[Verdict]:
        if role(program.name) == "worker":
            timeout = _job_timeout(program.env)
            msg = f"local {program.name} stopwaitsecs {program.stopwaitsecs} vs job timeout {timeout}s"
            yield Verdict(program.stopwaitsecs > timeout, msg, "stopwaitsecs", program.stopwaitsecs)

    out = (
        per_service(ctx, service)
        + per_template(ctx, template, *LONG_RUNNING_KINDS)
        + per_program(ctx, program)
    )
    if not out:
        raise NotApplicable("no worker in the rendered output")
    return out


# --- replicas --------------------------------------------------------------------------------------


def _replicas(name: str, svc: dict[str, Any]) -> Iterator[Verdict]:
    if service_role(name, svc) in ("api", "worker") and not is_one_shot(svc):
        replicas = as_int((svc.get("deploy") or {}).get("replicas")) or 1
        yield Verdict(replicas >= 2, f"{name} replicas {replicas}", ("deploy", "replicas"), replicas)


@check(
    "min-replicas",
    title="At least 2 api and 2 worker replicas (medium and large)",
    category="reliability",
    severity="danger",
    kind="static",
    why="With one replica every deploy, crash or node drain is an outage.",
    fix="Set api/worker replicas (or autoscaling minimums) to 2 or more in the profile.",
    needs="any-runtime",
)
def check_min_replicas(ctx: Context) -> list[Finding]:
    if ctx.profile is None:
        raise NotApplicable("profile unknown (pass --profile)")
    if ctx.profile == "small":
        raise NotApplicable("the small profile runs single replicas by design")
    out = per_service(ctx, _replicas)
    if ctx.has_kubernetes():
        manifests = ctx.manifests()
        scalers = autoscale_max(manifests)
        for m in manifests:
            if m.kind in ("Deployment", "StatefulSet") and workload_role(m) in ("api", "worker"):
                if m.name in scalers:
                    low, _, scaler = scalers[m.name]
                    ev = manifest_evidence(scaler, "spec.minReplicas", low)
                    out.append(Finding((low or 0) >= 2, f"{m.ref} autoscales from {low}", ev))
                else:
                    replicas = as_int((m.doc.get("spec") or {}).get("replicas", 1)) or 0
                    ev = manifest_evidence(m, "spec.replicas", replicas)
                    out.append(Finding(replicas >= 2, f"{m.ref} replicas {replicas}", ev))
    return out
