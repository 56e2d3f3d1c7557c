"""Live checks against the running stack (``schedgen checklist --live``): readiness, metrics, health,
backup freshness and restore drills, load-test results, rate limiting and the rendered runbook."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from schedgen_ops.ops.readiness.context import Context, LiveTarget
from schedgen_ops.ops.readiness.model import Evidence, Finding, check

BACKUP_MAX_AGE = timedelta(hours=26)
DEEP_VERIFY_MAX_AGE = timedelta(days=30)
LOADTEST_MAX_AGE = timedelta(days=7)
LOADTEST_SCENARIOS = ("baseline", "upload")

#: Series /metrics must expose: (who, regex on family names), as named in service/metrics.py.
REQUIRED_SERIES: tuple[tuple[str, str], ...] = (
    ("api", r"^schedgen_http_requests_total$"),
    ("api", r"^schedgen_http_request_duration_seconds"),
    ("api", r"^schedgen_uploads_total$"),
    ("api", r"^schedgen_queue_depth$"),
    ("api", r"^schedgen_db_pool_connections$"),
    ("api", r"^schedgen_workers_live$"),  # computed by the api from RQ worker heartbeats
    ("worker", r"^schedgen_worker_processes$"),
    ("worker", r"^schedgen_jobs_total$"),
    ("worker", r"^schedgen_parse_duration_seconds"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _get(live: LiveTarget, path: str) -> httpx.Response:
    return httpx.get(live.url.rstrip("/") + path, timeout=live.timeout_s)


@check(
    "live-readiness",
    title="The api reports ready (every dependency ok)",
    category="reliability",
    severity="danger",
    kind="live",
    why="A stack that is not ready refuses uploads however good its configuration looks.",
    fix="Run `schedgen health` and fix the dependency /readyz names.",
)
def live_readiness(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    url = live.url.rstrip("/") + "/readyz"
    try:
        response = _get(live, "/readyz")
    except httpx.HTTPError as exc:
        return [Finding(False, f"GET /readyz failed: {exc}", Evidence(url, "status", None))]
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:200]
    ok = response.status_code == 200
    return [Finding(ok, f"GET /readyz -> {response.status_code}", Evidence(url, "body", body))]


def metric_families(text: str) -> set[str]:
    """Metric family names in a Prometheus text exposition (from samples and # TYPE lines)."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def _scrape(url: str, timeout_s: float) -> tuple[set[str] | None, str]:
    """Metric families at ``url`` (None when unreachable) and a one-line outcome."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return None, f"GET {url} failed: {exc}"
    if response.status_code != 200:
        return None, f"GET {url} -> {response.status_code}"
    return metric_families(response.text), f"GET {url} -> 200"


@check(
    "live-metrics",
    title="/metrics exposes the required api and worker series",
    category="observability",
    severity="danger",
    kind="live",
    why="Alerts and dashboards are built on these series; a missing one is an alert that cannot fire.",
    fix="Check the metrics multiprocess directory / worker metrics ports and the service's metrics module.",
)
def live_metrics(ctx: Context) -> list[Finding]:
    """api series from the api's /metrics; worker series from the worker metrics endpoints when given
    (per-replica ports: compose, Kubernetes, local slots), else from the api's (shared multiprocess dir)."""
    live = ctx.need_live()
    api_url = live.url.rstrip("/") + "/metrics"
    api, outcome = _scrape(api_url, live.timeout_s)
    if api is None:
        return [Finding(False, outcome, Evidence(api_url, "status", None))]
    worker_urls = live.worker_metrics_urls or [api_url]
    workers: set[str] = set()
    reached = []
    for url in worker_urls:
        families = api if url == api_url else _scrape(url, live.timeout_s)[0]
        if families is not None:
            workers |= families
            reached.append(url)
    out = []
    if not reached:
        msg = f"no worker metrics endpoint answered ({', '.join(worker_urls)})"
        out.append(Finding(False, msg, Evidence(worker_urls[0], "status", None)))
    for who, pattern in REQUIRED_SERIES:
        families, where = (api, api_url) if who == "api" else (workers, ", ".join(reached) or worker_urls[0])
        found = sorted(name for name in families if re.search(pattern, name))
        msg = f"{who} series /{pattern}/: {found[0] if found else 'missing'}"
        out.append(Finding(bool(found), msg, Evidence(where, pattern, found[:3])))
    return out


@check(
    "live-health",
    title="`schedgen health` reports healthy (exit 0)",
    category="reliability",
    severity="danger",
    kind="live",
    why="Health covers what readiness does not: queue age, workers, disk, backups, Redis policy.",
    fix="Run `schedgen health` and follow each check's hint.",
)
def live_health(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    from schedgen_ops.ops.health import load_thresholds, resolve_endpoints, run_health

    endpoints = resolve_endpoints(
        live.health_target or "local",
        ctx.project,
        api_url=live.url,
        backup_dir=live.backup_dir,
        database_url=live.database_url,
        redis_url=live.redis_url,
    )
    report = run_health(endpoints, load_thresholds(ctx.project))
    data = report.to_dict()
    bad = [c for c in data.get("checks", []) if c.get("status") != "ok"]
    names = [f"{c.get('id')}={c.get('status')}" for c in bad]
    msg = f"schedgen health exit {report.exit_code}" + (f": {', '.join(names[:4])}" if names else "")
    return [
        Finding(
            report.exit_code == 0,
            msg,
            Evidence("schedgen health --json", "verdict", {"verdict": data.get("verdict"), "not_ok": names}),
        )
    ]


def _backups(ctx: Context) -> tuple[Path, list[Any]]:
    from schedgen_ops.ops.backup.catalog import list_backups

    live = ctx.need_live()
    directory = live.backup_dir or ctx.project / "backups"
    return directory, [e for e in list_backups(directory) if e.state == "complete" and e.manifest is not None]


@check(
    "live-backup-fresh",
    title="The latest backup is younger than 26 h and verified",
    category="reliability",
    severity="danger",
    kind="live",
    why="A nightly backup that silently stopped is discovered only at restore time.",
    fix="Check the backup timer/CronJob logs; run `schedgen backup && schedgen backup verify`.",
)
def live_backup_fresh(ctx: Context) -> list[Finding]:
    directory, entries = _backups(ctx)
    if not entries:
        return [Finding(False, f"no complete backup in {directory}", Evidence(str(directory), None, None))]
    latest = entries[-1]
    manifest = latest.manifest
    created = _parse_time(manifest.finished_at or manifest.started_at) or datetime.min.replace(tzinfo=UTC)
    age = _now() - created
    rel = str(latest.path / "manifest.json")
    hours = age.total_seconds() / 3600
    verification = manifest.verification
    return [
        Finding(
            age < BACKUP_MAX_AGE,
            f"latest backup {latest.id} is {hours:.1f} h old",
            Evidence(rel, "finished_at", manifest.finished_at),
        ),
        Finding(
            manifest.verified,
            f"latest backup verification: {verification.status if verification else 'never verified'}",
            Evidence(rel, "verification.status", verification.status if verification else None),
        ),
    ]


@check(
    "live-restore-drill",
    title="A deep verify (restore drill) passed within 30 days",
    category="reliability",
    severity="danger",
    kind="live",
    why="Only a restore proves a backup; 'restore within 1 hour' is a plan, not a fact, until rehearsed.",
    fix="Run `schedgen backup verify --deep` (restores into a scratch database and compares row counts).",
)
def live_restore_drill(ctx: Context) -> list[Finding]:
    directory, entries = _backups(ctx)
    best: tuple[datetime, str, Any] | None = None
    for entry in entries:
        for item in entry.manifest.verification_history or (
            [entry.manifest.verification] if entry.manifest.verification else []
        ):
            when = _parse_time(item.verified_at)
            if item.level == "deep" and item.status == "passed" and when and (best is None or when > best[0]):
                best = (when, str(entry.path / "manifest.json"), item)
    if best is None:
        return [
            Finding(
                False,
                f"no passed deep verify in {directory}",
                Evidence(str(directory), "verification_history", None),
            )
        ]
    when, rel, item = best
    days = (_now() - when).total_seconds() / 86400
    ok = _now() - when < DEEP_VERIFY_MAX_AGE
    return [
        Finding(
            ok,
            f"last passed deep verify {days:.1f} days ago ({item.duration_s:.1f} s)",
            Evidence(rel, "verification_history[].verified_at", item.verified_at),
        )
    ]


def _load_summaries(dirs: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    out = []
    for directory in dirs:
        for path in sorted(directory.glob("**/summary.json")) if directory.is_dir() else []:
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and data.get("scenario"):
                out.append((path, data))
    return out


@check(
    "live-loadtests",
    title="Baseline and upload load tests passed within 7 days",
    category="scalability",
    severity="danger",
    kind="live",
    why="Performance targets regress silently; only a recent passing run shows the build still meets them.",
    fix="Run `schedgen loadtest baseline` and `schedgen loadtest upload` against this stack (--report DIR).",
)
def live_loadtests(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    dirs = live.report_dirs or [ctx.project / "loadtest-reports", ctx.project / "reports"]
    summaries = _load_summaries(dirs)
    out = []
    for scenario in LOADTEST_SCENARIOS:
        runs = [
            (p, d)
            for p, d in summaries
            if d.get("scenario") == scenario and _parse_time(d.get("finished_at"))
        ]
        if not runs:
            out.append(
                Finding(
                    False,
                    f"no {scenario} load-test report in {', '.join(map(str, dirs))}",
                    Evidence(None, "scenario", scenario),
                )
            )
            continue
        path, data = max(
            runs, key=lambda item: _parse_time(item[1]["finished_at"]) or datetime.min.replace(tzinfo=UTC)
        )
        when = _parse_time(data["finished_at"])
        assert when is not None
        days = (_now() - when).total_seconds() / 86400
        fresh = _now() - when < LOADTEST_MAX_AGE
        passed = data.get("passed") is True
        failed = [t.get("name") for t in data.get("thresholds") or [] if not t.get("passed")]
        msg = f"{scenario}: {'passed' if passed else f'failed {failed}'} {days:.1f} days ago"
        out.append(Finding(passed and fresh, msg, Evidence(str(path), "passed", data.get("passed"))))
    return out


#: Issues a throw-away API key and revokes it: (create() -> (key, key_id), revoke(key_id)).
KeyIssuer = tuple[Callable[[], tuple[str, str]], Callable[[str], None]]
KEY_ISSUER: KeyIssuer | None = None


def _minimal_pdf() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.cell(text="schedgen checklist rate-limit probe")
    return bytes(pdf.output())


def upload_limit(ctx: Context) -> int:
    """Uploads per window from the project's configuration (the rate_uploads setting)."""
    from limits import parse

    value = ctx.config.service.rate_uploads if ctx.config is not None else "10/hour"
    return int(parse(value).amount)


@check(
    "live-rate-limit",
    title="Rate limiting is enforced: limit + 1 uploads get 429",
    category="security",
    severity="danger",
    kind="live",
    why="A configured limit that the running service does not enforce protects nothing.",
    fix="Check the api's Redis connection for the limiter and SCHEDGEN_RATE_UPLOADS; see docs on rate "
    "limits.",
)
def live_rate_limit(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    issuer = KEY_ISSUER or _cli_key_issuer(ctx)
    create, revoke = issuer
    limit = upload_limit(ctx)
    key, key_id = create()
    url = live.url.rstrip("/") + "/api/uploads"
    pdf = _minimal_pdf()
    statuses: list[int] = []
    last: httpx.Response | None = None
    try:
        with httpx.Client(timeout=live.timeout_s, headers={"X-API-Key": key}) as client:
            for _ in range(limit + 1):
                last = client.post(url, files={"file": ("probe.pdf", pdf, "application/pdf")})
                statuses.append(last.status_code)
                if last.status_code == 429:
                    break
    finally:
        revoke(key_id)
    assert last is not None
    within = statuses[:limit]
    ok = len(statuses) == limit + 1 and statuses[-1] == 429 and all(s != 429 for s in within)
    headers = {k: last.headers.get(k) for k in ("Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining")}
    if ok:
        msg = f"upload {limit + 1} with a throw-away key got 429 (limit {limit})"
    elif 429 in statuses:
        msg = f"429 after {statuses.index(429)} uploads, before the configured limit {limit}"
    else:
        msg = f"no 429 after {len(statuses)} uploads (limit {limit}): {sorted(set(statuses))}"
    if ok and not last.headers.get("Retry-After"):
        ok, msg = False, msg + " without Retry-After"
    return [Finding(ok, msg, Evidence(url, "statuses", {"statuses": statuses, "headers": headers}))]


def _cli_key_issuer(ctx: Context) -> KeyIssuer:
    """Create/revoke keys in the job ledger with the library `schedgen apikeys` uses."""
    from schedgen_ops.service import clients, db

    live = ctx.need_live()
    url = live.database_url
    if not url:
        from schedgen_ops.service.config import load_settings

        url = load_settings(need=("database_url",)).database_url.get_secret_value()

    def create() -> tuple[str, str]:
        with db.connect(url) as conn:
            key_id, key = clients.create_key(conn, f"checklist-probe-{_now():%Y%m%dT%H%M%SZ}")
        return key, key_id

    def revoke(key_id: str) -> None:
        with db.connect(url) as conn:
            clients.revoke_key(conn, key_id)

    return create, revoke


@check(
    "live-runbook",
    title="The rendered runbook is present",
    category="operations",
    severity="warning",
    kind="live",
    why="On-call needs this deployment's names, URLs and commands, not a generic wiki page.",
    fix="Run `schedgen render` for the deployed profile (writes docs/RUNBOOK.md).",
)
def live_runbook(ctx: Context) -> list[Finding]:
    live = ctx.need_live()
    path = live.runbook or ctx.project / "deploy" / "docs" / "RUNBOOK.md"
    if not path.is_file():
        return [Finding(False, f"no runbook at {path}", Evidence(str(path), None, None))]
    text = path.read_text(encoding="utf-8")
    ok = re.search(r"schedgen [^\n`]*\bhealth\b", text) is not None
    msg = f"{path} ({len(text.splitlines())} lines){'' if ok else ' does not mention `schedgen health`'}"
    return [Finding(ok, msg, Evidence(str(path), "schedgen health", ok))]
