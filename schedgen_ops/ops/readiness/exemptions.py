"""Per-resource exemptions, the way Polaris reads exemption annotations: a failing finding about one
compose service or Kubernetes object is accepted when that resource carries a reason for this check.

    compose:     labels: {io.schedgen.checklist.exempt.run-as-non-root: "chowns volumes, no network"}
    kubernetes:  metadata.annotations: {checklist.schedgen.io/exempt-run-as-non-root: "..."}

The reason is mandatory and shown with the finding in every output; a blank reason exempts nothing.
"""

from __future__ import annotations

import re

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.model import Finding
from schedgen_ops.ops.readiness.tree import keyed

COMPOSE_LABEL = "io.schedgen.checklist.exempt.{check_id}"
K8S_ANNOTATION = "checklist.schedgen.io/exempt-{check_id}"
_SERVICE_PATH = re.compile(r"^services\.([^.]+)")
_OBJECT_PATH = re.compile(r"^([A-Za-z]+)/([^:\s]+):")


def exemption(ctx: Context, check_id: str, finding: Finding) -> str | None:
    """The reason the resource a finding is about gives for exempting it from ``check_id``, if any."""
    tree = ctx.tree
    path = finding.evidence.path or ""
    if tree is None:
        return None
    match = _SERVICE_PATH.match(path)
    if match and tree.has_compose:
        service = tree.services().get(match.group(1)) or {}
        reason = keyed(service.get("labels")).get(COMPOSE_LABEL.format(check_id=check_id))
        return str(reason).strip() or None if reason is not None else None
    match = _OBJECT_PATH.match(path)
    if match and tree.has_kubernetes:
        kind, name = match.groups()
        for manifest in tree.kinds(kind):
            if manifest.name == name:
                notes = (manifest.doc.get("metadata") or {}).get("annotations") or {}
                reason = notes.get(K8S_ANNOTATION.format(check_id=check_id))
                return str(reason).strip() or None if reason is not None else None
    return None


def apply_exemptions(ctx: Context, check_id: str, findings: list[Finding]) -> list[Finding]:
    """Failing findings whose resource exempts itself become passing findings that carry the reason."""
    out = []
    for finding in findings:
        reason = None if finding.ok else exemption(ctx, check_id, finding)
        if reason:
            out.append(
                Finding(True, f"{finding.message} [exempt: {reason}]", finding.evidence, exempt=reason)
            )
        else:
            out.append(finding)
    return out
