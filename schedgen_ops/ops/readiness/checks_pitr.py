"""Static check: production profiles (medium, large) archive WAL for point-in-time recovery.

Evidence per rendered target: the local runtime's Postgres command line archives through pgBackRest
(archive_mode=on, archive-push); on Kubernetes (the large profile's platform) a CloudNativePG Cluster
with an object-store backup and a ScheduledBackup of it. Compose has no pgBackRest image yet
(docs/BACKUP.md), so a compose tree adds no finding here: the check judges the targets that can archive.
"""

from __future__ import annotations

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check

PRODUCTION = ("medium", "large")


@check(
    "backup-pitr",
    title="Point-in-time recovery: WAL archived continuously (medium and large)",
    category="operations",
    severity="danger",
    kind="static",
    why="A nightly dump loses a day of uploads with a disk; archived WAL loses at most archive_timeout.",
    fix="Set backup.pitr.enabled=true (the medium and large default), render and deploy, then run "
    "`schedgen backup pitr-enable`; on Kubernetes enable MinIO so CloudNativePG has an object store.",
)
def check_pitr(ctx: Context) -> list[Finding]:
    if ctx.profile is None:
        raise NotApplicable("profile unknown (pass --profile)")
    if ctx.profile not in PRODUCTION:
        raise NotApplicable(f"the {ctx.profile} profile makes PITR opt-in")
    tree = ctx.static_tree()
    out = []
    if ctx.has_local():
        conf = "local/supervisord.conf"
        line = next((x for x in tree.text(conf).splitlines() if "/postgres -D" in x), "")
        archives = "archive_mode=on" in line and "archive-push" in line
        out.append(
            Finding(
                archives,
                "local Postgres archives WAL through pgBackRest"
                if archives
                else "local Postgres runs without archive_mode=on / pgbackrest archive-push",
                Evidence(conf, "program:postgres.command", "archive_mode=on" if archives else None),
            )
        )
    if ctx.has_kubernetes() and ctx.profile == "large":  # medium's single Postgres is a host's
        manifests = ctx.manifests()
        clusters = [m for m in manifests if m.kind == "Cluster"]
        scheduled = {
            str((m.doc.get("spec") or {}).get("cluster", {}).get("name"))
            for m in manifests
            if m.kind == "ScheduledBackup"
        }
        for m in clusters:
            store = ((m.doc.get("spec") or {}).get("backup") or {}).get("barmanObjectStore")
            ok = bool(store) and m.name in scheduled
            out.append(
                Finding(
                    ok,
                    f"Cluster/{m.name}: object-store WAL archive and a ScheduledBackup"
                    if ok
                    else f"Cluster/{m.name}: no spec.backup.barmanObjectStore or no ScheduledBackup for it",
                    Evidence(m.file, "spec.backup.barmanObjectStore", bool(store)),
                )
            )
        if not clusters:
            out.append(
                Finding(
                    False,
                    "Postgres runs as a plain StatefulSet: no WAL archive (use CloudNativePG, instances > 1)",
                    Evidence("kubernetes/postgres.yaml", "kind", "StatefulSet"),
                )
            )
    if not out:
        raise NotApplicable("no local or Kubernetes output in scope (compose: no pgBackRest image yet)")
    return out
