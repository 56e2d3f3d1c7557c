"""Kubernetes-only static checks: autoscaling bounds, PodDisruptionBudgets and NetworkPolicies."""

from __future__ import annotations

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import manifest_evidence
from schedgen_ops.ops.readiness.inspect import (
    as_int,
    autoscale_max,
    pod_template,
    selector_matches,
    workload_role,
)
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check


@check(
    "autoscaling-bounds",
    title="api HPA and worker KEDA ScaledObject have sane bounds",
    category="scalability",
    severity="danger",
    kind="static",
    why="An autoscaler without a maximum can exhaust Postgres and the cluster; min > max never scales.",
    fix="Render an HPA for the api and a ScaledObject for workers with 1 <= min < max from the profile.",
)
def check_autoscaling(ctx: Context) -> list[Finding]:
    manifests = ctx.manifests() if ctx.has_kubernetes() else []
    if not ctx.has_kubernetes():
        raise NotApplicable("no Kubernetes output in scope")
    names = {m.name: m for m in manifests if m.kind in ("Deployment", "StatefulSet")}
    out = []
    for target, (low, high, scaler) in autoscale_max(manifests).items():
        ok = high is not None and low is not None and 1 <= low < high and target in names
        spec = scaler.doc.get("spec") or {}
        has_signal = (
            bool(spec.get("metrics") or spec.get("triggers"))
            if scaler.kind in ("HorizontalPodAutoscaler", "ScaledObject")
            else True
        )
        if scaler.kind == "ScaledObject":
            has_signal = bool(spec.get("triggers"))
        problem = "" if target in names else f" (target {target} not rendered)"
        problem += "" if has_signal else " (no metric/trigger)"
        msg = f"{scaler.ref} -> {target}: {low}..{high}{problem}"
        out.append(
            Finding(ok and has_signal, msg, manifest_evidence(scaler, "spec", {"min": low, "max": high}))
        )
    if ctx.profile == "large":
        scaled = {workload_role(names[t]) for t in autoscale_max(manifests) if t in names}
        for wanted in ("api", "worker"):
            if wanted not in scaled:
                out.append(
                    Finding(
                        False,
                        f"large profile: no autoscaler for the {wanted}",
                        Evidence("kubernetes", wanted, None),
                    )
                )
    if not out:
        raise NotApplicable("no autoscalers rendered for this profile")
    return out


@check(
    "pod-disruption-budgets",
    title="Replicated workloads have a PodDisruptionBudget that allows drains",
    category="reliability",
    severity="warning",
    kind="static",
    why="Node drains and cluster upgrades evict every replica at once without a PDB; one too strict blocks "
    "drains.",
    fix="Render a PDB (maxUnavailable: 1 or minAvailable below replicas) for api and workers.",
)
def check_pdbs(ctx: Context) -> list[Finding]:
    manifests = ctx.manifests() if ctx.has_kubernetes() else []
    if not ctx.has_kubernetes():
        raise NotApplicable("no Kubernetes output in scope")
    pdbs = [m for m in manifests if m.kind == "PodDisruptionBudget"]
    scalers = autoscale_max(manifests)
    out = []
    for m in manifests:
        if m.kind not in ("Deployment", "StatefulSet") or workload_role(m) not in ("api", "worker"):
            continue
        tmpl = pod_template(m)
        labels = tmpl.labels if tmpl else {}
        replicas = (
            scalers[m.name][0] if m.name in scalers else as_int((m.doc.get("spec") or {}).get("replicas", 1))
        )
        replicas = replicas or 1
        matching = [p for p in pdbs if selector_matches((p.doc.get("spec") or {}).get("selector"), labels)]
        if not matching:
            out.append(
                Finding(
                    False,
                    f"{m.ref}: no PodDisruptionBudget selects it",
                    manifest_evidence(m, "spec.template.metadata.labels", labels),
                )
            )
            continue
        pdb = matching[0]
        spec = pdb.doc.get("spec") or {}
        max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_unavailable is not None:
            ok = str(max_unavailable) not in ("0", "0%")
        else:
            low = as_int(min_available)
            ok = (low is not None and low < replicas) or (
                str(min_available).endswith("%") and str(min_available) != "100%"
            )
        msg = (
            f"{m.ref}: {pdb.ref} maxUnavailable={max_unavailable} minAvailable={min_available} (replicas "
            f"{replicas})"
        )
        out.append(
            Finding(
                ok,
                msg,
                manifest_evidence(
                    pdb, "spec", {"maxUnavailable": max_unavailable, "minAvailable": min_available}
                ),
            )
        )
    return out


@check(
    "network-policies",
    title="Default-deny NetworkPolicy with explicit allows",
    category="security",
    severity="danger",
    kind="static",
    why="Without a default deny any compromised pod can reach Postgres, Redis and MinIO directly.",
    fix="Render a default-deny ingress NetworkPolicy plus one allow policy per workload.",
)
def check_network_policies(ctx: Context) -> list[Finding]:
    if not ctx.has_kubernetes():
        raise NotApplicable("no Kubernetes output in scope")
    manifests = ctx.manifests()
    policies = [m for m in manifests if m.kind == "NetworkPolicy"]
    out = []
    deny = [
        p
        for p in policies
        if (p.doc.get("spec") or {}).get("podSelector") in ({}, None, {"matchLabels": {}})
        and "Ingress" in ((p.doc.get("spec") or {}).get("policyTypes") or ["Ingress"])
        and not (p.doc.get("spec") or {}).get("ingress")
    ]
    if deny:
        out.append(
            Finding(
                True,
                f"default deny ingress: {deny[0].ref}",
                manifest_evidence(deny[0], "spec", deny[0].doc.get("spec")),
            )
        )
    else:
        out.append(
            Finding(
                False, "no default-deny ingress NetworkPolicy", Evidence("kubernetes", "NetworkPolicy", None)
            )
        )
    allows = [p for p in policies if p not in deny]
    for m in manifests:
        tmpl = pod_template(m)
        if tmpl is None or m.kind not in ("Deployment", "StatefulSet"):
            continue
        selected = [
            p for p in allows if selector_matches((p.doc.get("spec") or {}).get("podSelector"), tmpl.labels)
        ]
        msg = f"{m.ref} allowed by {[p.name for p in selected] or 'no policy'}"
        out.append(
            Finding(bool(selected), msg, manifest_evidence(m, "spec.template.metadata.labels", tmpl.labels))
        )
    return out
