"""Manual items: criteria no file or endpoint can prove. Each is acknowledged with who, when and a note.

They are warnings: pending items lower the score but never fail CI by themselves, so a red build always
means evidence against readiness, not paperwork.
"""

from __future__ import annotations

from schedgen_ops.ops.readiness.model import Check

MANUAL_ITEMS = [
    Check(
        "manual-rollback-drill",
        "A rollback was rehearsed on the production runtime",
        "operations",
        "warning",
        "manual",
        "A rollback that was never exercised fails when it is needed: at 3 a.m. during a bad release.",
        "Deploy a release, run `schedgen rollback` on the production target, confirm health, then ack.",
    ),
    Check(
        "manual-alert-delivery",
        "A test alert reached the on-call receiver",
        "observability",
        "warning",
        "manual",
        "Valid rules still page nobody if Alertmanager's receiver is wrong or muted.",
        "Fire a test alert (amtool alert add or a silenced rule) and confirm the page arrived, then ack.",
    ),
    Check(
        "manual-offsite-backups",
        "Backups are copied off-site",
        "reliability",
        "warning",
        "manual",
        "A backup on the same host as the database is lost with the host.",
        "Schedule `schedgen backup push ID s3://...` to storage in another failure domain, then ack.",
    ),
    Check(
        "manual-production-capacity",
        "Production hardware sustains the plan's 1000 concurrent users",
        "scalability",
        "warning",
        "manual",
        "Load tests in CI run on small machines; only a run on production-sized capacity proves the target.",
        "Run `schedgen loadtest stress` against a production-sized staging stack and record the breaking "
        "point.",
    ),
    Check(
        "manual-oncall-ready",
        "On-call rota knows the runbook and has access",
        "operations",
        "warning",
        "manual",
        "A runbook nobody has opened, or credentials nobody on call holds, stretches every incident.",
        "Walk the on-call engineers through docs/RUNBOOK.md and grant access, then ack with their names.",
    ),
    Check(
        "manual-secrets-escrow",
        "Project secrets are escrowed outside the host",
        "security",
        "warning",
        "manual",
        "Backups restore nothing if .schedgen/secrets.env died with the host.",
        "Store .schedgen/secrets.env in the team's password manager or vault, then ack.",
    ),
]
