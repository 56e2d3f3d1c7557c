"""Static checks for what proves itself later: alert rules (promtool-valid and wired), backup schedules."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
from pathlib import PurePosixPath
from typing import Any

from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.evidence import manifest_evidence
from schedgen_ops.ops.readiness.inspect import containers, pod_template
from schedgen_ops.ops.readiness.model import Evidence, Finding, NotApplicable, check
from schedgen_ops.ops.readiness.tree import RenderedTree

REQUIRED_SCRAPES = ("api", "worker")


def rule_files(tree: RenderedTree) -> dict[str, list[str]]:
    """Prometheus rule files under prometheus/ -> the alert names they define."""
    out: dict[str, list[str]] = {}
    for rel in tree.files("**/prometheus/**/*.y*ml"):
        docs = tree.docs(rel)
        doc = docs[0] if docs else None
        if isinstance(doc, dict) and isinstance(doc.get("groups"), list):
            alerts = [
                str(r["alert"]) for g in doc["groups"] for r in (g or {}).get("rules") or [] if "alert" in r
            ]
            out[rel] = alerts
    return out


def _prometheus_configs(tree: RenderedTree) -> list[tuple[str, dict[str, Any]]]:
    """Every Prometheus server config (a prometheus/ YAML with scrape_configs), one per target area."""
    out = []
    for rel in tree.files("**/prometheus/**/*.y*ml"):
        docs = tree.docs(rel)
        if docs and isinstance(docs[0], dict) and "scrape_configs" in docs[0]:
            out.append((rel, docs[0]))
    return out


@check(
    "alert-rules",
    title="Alert rules are present and promtool-valid",
    category="observability",
    severity="danger",
    kind="static",
    why="Alerts that do not load (or do not exist) page nobody: the outage is found by students.",
    fix="Render prometheus rules and fix what `promtool check rules` reports (install Debian's prometheus "
    "for promtool).",
)
def check_alert_rules(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    if not tree.exists("prometheus") and not ctx.has_compose() and not ctx.has_kubernetes():
        raise NotApplicable("no monitoring output in scope")
    files = rule_files(tree)
    alerts = [a for names in files.values() for a in names]
    if not alerts:
        return [
            Finding(
                False,
                "no Prometheus alert rules rendered",
                Evidence("prometheus", "groups[].rules[].alert", None),
            )
        ]
    out = [
        Finding(
            True,
            f"{len(alerts)} alerts in {len(files)} file(s)",
            Evidence(next(iter(files)), "groups[].rules[].alert", alerts),
        )
    ]
    promtool = shutil.which("promtool")
    if promtool is None:
        out.append(
            Finding(
                False, "promtool is not on PATH: rule validity unproven", Evidence(None, "promtool", None)
            )
        )
        return out
    for rel in files:
        proc = subprocess.run(
            [promtool, "check", "rules", str(tree.root / rel)], capture_output=True, text=True, timeout=60
        )
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        msg = (
            f"promtool check rules {rel}: "
            f"{'SUCCESS' if proc.returncode == 0 else detail[-1] if detail else 'failed'}"
        )
        out.append(Finding(proc.returncode == 0, msg, Evidence(rel, "promtool check rules", proc.returncode)))
    return out


_SCHEDGEN_METRIC = re.compile(r"\bschedgen_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def exposed_metrics() -> set[str]:
    """Metric names our processes export: string literals in the service and backup packages' code."""
    from pathlib import Path

    import schedgen_ops

    root = Path(schedgen_ops.__file__).parent
    names: set[str] = set()
    for package in ("service", "ops/backup"):
        for path in (root / package).glob("**/*.py"):
            names.update(re.findall(r'"(schedgen_[a-z0-9_]+)"', path.read_text(encoding="utf-8")))
    return names


def _base_name(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@check(
    "alert-metrics-exposed",
    title="Every schedgen_* series an alert uses is exposed by the service",
    category="observability",
    severity="danger",
    kind="static",
    why="An alert on a series nothing exports never fires (or, with absent(), always fires).",
    fix="Rename the series in the rule to the service's metric, or export the metric the rule expects.",
)
def check_alert_metrics_exposed(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    files = rule_files(tree)
    if not files:
        raise NotApplicable("no alert rules rendered")
    known = exposed_metrics()
    out = []
    for rel in files:
        doc = tree.docs(rel)[0]
        for g_index, group in enumerate(doc.get("groups") or []):
            for rule in (group or {}).get("rules") or []:
                if "alert" not in rule:
                    continue
                used = sorted(set(_SCHEDGEN_METRIC.findall(str(rule.get("expr", "")))))
                missing = [n for n in used if _base_name(n) not in known and n not in known]
                path = f"groups[{g_index}].rules[?alert={rule['alert']}].expr"
                msg = f"{rule['alert']}: " + (
                    f"uses {missing} which no component exposes" if missing else "ok"
                )
                out.append(Finding(not missing, msg, Evidence(rel, path, missing or used)))
    return out


@check(
    "prometheus-wiring",
    title="Prometheus loads the rules, scrapes api and workers, and routes alerts",
    category="observability",
    severity="warning",
    kind="static",
    why="Rules Prometheus never loads, or targets it never scrapes, are alerts that cannot fire.",
    fix="List the rule files under rule_files, add api and worker scrape jobs and an alertmanagers target.",
)
def check_prometheus_wiring(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    configs = _prometheus_configs(tree)
    if not configs:
        if not tree.files("**/prometheus/**/*"):
            raise NotApplicable("no Prometheus configuration rendered")
        return [
            Finding(
                False, "no prometheus.yml with scrape_configs", Evidence("prometheus", "scrape_configs", None)
            )
        ]
    out = []
    rules = rule_files(tree)
    for rel, config in configs:
        area = rel.split("/", 1)[0]
        patterns = [PurePosixPath(str(p)).name for p in config.get("rule_files") or []]
        for rule_rel in (r for r in rules if r.split("/", 1)[0] == area):
            name = PurePosixPath(rule_rel).name
            ok = any(fnmatch.fnmatch(name, p) for p in patterns)
            msg = f"{rule_rel} {'loaded' if ok else 'not listed'} by rule_files"
            out.append(Finding(ok, msg, Evidence(rel, "rule_files", config.get("rule_files"))))
        jobs = [str(j.get("job_name", "")) for j in config.get("scrape_configs") or []]
        for wanted in REQUIRED_SCRAPES:
            ok = any(wanted in job for job in jobs)
            msg = f"{rel}: scrape job for {wanted}: {'yes' if ok else 'missing'}"
            out.append(Finding(ok, msg, Evidence(rel, "scrape_configs[].job_name", jobs)))
        managers = (config.get("alerting") or {}).get("alertmanagers")
        msg = f"{rel}: alertmanagers {'configured' if managers else 'missing'}"
        out.append(Finding(bool(managers), msg, Evidence(rel, "alerting.alertmanagers", managers)))
    return out


_CRON = re.compile(r"^(@(hourly|daily|weekly|monthly|yearly|annually|midnight)|(\S+\s+){4}\S+)$")


def _systemd(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith(("#", ";")):
            out[key.strip()] = value.strip()
    return out


@check(
    "backup-schedule",
    title="Backups run on a schedule (and are verified)",
    category="operations",
    severity="danger",
    kind="static",
    why="A backup that depends on someone remembering is a backup that did not happen last Friday.",
    fix="Install the rendered systemd timer / cron entry, or the Kubernetes backup CronJob.",
)
def check_backup_schedule(ctx: Context) -> list[Finding]:
    tree = ctx.static_tree()
    out = []
    if ctx.has_compose() or "local" in ctx.targets:
        timers = []
        for rel in tree.files("**/systemd/**/*.timer"):
            unit = _systemd(tree.text(rel))
            service_rel = rel[: -len(".timer")] + ".service"
            service = _systemd(tree.text(service_rel)) if tree.exists(service_rel) else {}
            command = service.get("ExecStart", "")
            if unit.get("OnCalendar") and "backup" in (rel + command):
                timers.append((rel, unit["OnCalendar"], command))
        services = [n for n in tree.services() if "backup" in n] if tree.has_compose else []
        if timers:
            rel, when, command = timers[0]
            verify = " and verifies" if "verify" in command else ""
            out.append(
                Finding(
                    True,
                    f"systemd timer {rel} OnCalendar={when}{verify}",
                    Evidence(rel, "Timer.OnCalendar", when),
                )
            )
        elif services:
            out.append(
                Finding(
                    True,
                    f"compose backup service {services[0]}",
                    Evidence("compose", f"services.{services[0]}", None),
                )
            )
        else:
            out.append(
                Finding(
                    False, "no backup timer or backup service rendered", Evidence("systemd", "*.timer", None)
                )
            )
    if ctx.has_kubernetes():
        jobs = [m for m in ctx.manifests() if m.kind == "CronJob"]
        backups = []
        for m in jobs:
            tmpl = pod_template(m)
            command = " ".join(
                str(x)
                for _, c in (containers(tmpl) if tmpl else [])
                for x in [*(c.get("command") or []), *(c.get("args") or [])]
            )
            if "backup" in m.name or "backup" in command:
                backups.append((m, str((m.doc.get("spec") or {}).get("schedule", "")), command))
        if backups:
            m, schedule, command = backups[0]
            ok = bool(_CRON.match(schedule.strip()))
            verify = " and verifies" if "verify" in command else ""
            out.append(
                Finding(
                    ok,
                    f"{m.ref} schedule '{schedule}'{verify}",
                    manifest_evidence(m, "spec.schedule", schedule),
                )
            )
        else:
            out.append(Finding(False, "no backup CronJob rendered", Evidence("kubernetes", "CronJob", None)))
    if not out:
        raise NotApplicable("no deployment output in scope")
    return out
