"""Write a run's report: summary.json (validated against the shipped JSON Schema) and summary.md.

locust writes its own HTML and CSV next to them. The Markdown is meant for a CI job page: verdict
first, then thresholds, endpoints, stages and the scenario-specific findings.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_PATH = Path(__file__).with_name("summary.schema.json")
SCHEMA_VERSION = 1


@cache
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


def validate(summary: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` when ``summary`` does not match the documented schema."""
    jsonschema.validate(summary, schema())


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if unit == "ratio" and isinstance(value, int | float):
        return f"{value * 100:.2f}%"
    if isinstance(value, float):
        text = f"{value:.0f}" if value.is_integer() else f"{value:.1f}"
        return f"{text} {unit}" if unit in ("ms", "s") else text
    return f"{value}"


def markdown(summary: dict[str, Any]) -> str:
    """The human summary of a run."""
    verdict = "PASS" if summary["passed"] else "FAIL"
    lines = [
        f"# Load test `{summary['scenario']}`: {verdict}",
        "",
        f"- target: {summary['url']}",
        f"- started: {summary['started_at']}, ran {summary['duration_s']:.1f} s "
        f"(time scale {summary['time_scale']}, users scale {summary['users_scale']}, "
        f"peak {summary['peak_users']} users)",
        f"- requests: {summary['totals']['requests']}, "
        f"errors: {_fmt(summary['totals']['error_rate'], 'ratio')} "
        f"(rate-limited: {summary['totals']['rate_limited']})",
        f"- jobs: {summary['jobs']['uploaded']} uploaded, {summary['jobs']['completed']} completed, "
        f"{summary['jobs']['failed']} failed, {summary['jobs']['incomplete']} unfinished",
    ]
    if summary.get("aborted"):
        lines.append(f"- **aborted**: {summary['aborted']}")
    lines += ["", "## Thresholds", "", "| threshold | limit | actual | result |", "|---|---|---|---|"]
    for result in summary["thresholds"]:
        mark = "pass" if result["passed"] else "**FAIL**"
        if not result["gate"]:
            mark += " (per step)"
        limit = f"{result['op']} {_fmt(result['limit'], result['unit'])}"
        lines.append(f"| {result['name']} | {limit} | {_fmt(result['actual'], result['unit'])} | {mark} |")
    lines += [
        "",
        "## Endpoints",
        "",
        "| endpoint | requests | errors | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ep in summary["endpoints"]:
        lines.append(
            f"| {ep['name']} | {ep['requests']} | {_fmt(ep['error_rate'], 'ratio')} | {_fmt(ep['rps'])} | "
            f"{_fmt(ep['p50_ms'])} | {_fmt(ep['p95_ms'])} | {_fmt(ep['p99_ms'])} | {_fmt(ep['max_ms'])} |"
        )
    lines += [
        "",
        "## Stages",
        "",
        "| stage | users | window s | requests | errors | p95 ms | upload p95 ms | status p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for st in summary["stages"]:
        lines.append(
            f"| {st['name']} | {st['users']} | {st['start_s']:.0f}–{st['end_s']:.0f} | {st['requests']} | "
            f"{_fmt(st['error_rate'], 'ratio')} | {_fmt(st['p95_ms'])} | {_fmt(st['upload_p95_ms'])} | "
            f"{_fmt(st['status_p95_ms'])} |"
        )
    jobs = summary["jobs"]
    lines += [
        "",
        "## Jobs (upload -> completed, per job)",
        "",
        f"completion rate {_fmt(jobs['completion_rate'], 'ratio')}; "
        f"p50 {_fmt(jobs['completion_ms']['p50'])} ms, "
        f"p95 {_fmt(jobs['completion_ms']['p95'])} ms, max {_fmt(jobs['completion_ms']['max'])} ms",
    ]
    if summary.get("sustained_users") is not None:
        point = summary["breaking_point"]
        lines += ["", "## Breaking point", ""]
        if point is None:
            lines.append(
                f"No step crossed a threshold: sustained {summary['sustained_users']} users (all steps)."
            )
        else:
            lines.append(
                f"Broke at **{point['users']} users** "
                f"({point['stage']}: crossed {', '.join(point['crossed'])}; "
                f"p95 {_fmt(point['p95_ms'])} ms, errors {_fmt(point['error_rate'], 'ratio')}); "
                f"sustained {summary['sustained_users']} users."
            )
        rec = summary.get("recovery")
        if rec is not None:
            lines.append(
                f"Recovery after the load dropped: {'recovered' if rec['passed'] else '**not recovered**'} "
                f"(p95 {_fmt(rec['p95_ms'])} ms, errors {_fmt(rec['error_rate'], 'ratio')})."
            )
    spike = summary.get("spike")
    if spike is not None:
        lines += [
            "",
            "## Spike",
            "",
            f"Pre-spike p95 {_fmt(spike['baseline_p95_ms'])} ms, "
            f"during the spike {_fmt(spike['spike_p95_ms'])} ms; "
            f"back under {_fmt(spike['limit_ms'])} ms after "
            + (
                f"{spike['recovery_s']:.1f} s."
                if spike["recovery_s"] is not None
                else "**never** (within the run)."
            ),
        ]
    rss = summary.get("rss")
    if rss is not None and rss["growth"]:
        # "process" only in summaries written before the service exported RSS on /metrics
        source = "/metrics" if rss.get("source", "metrics") == "metrics" else "the stack's local processes"
        lines += [
            "",
            f"## Memory (RSS from {source}; growth measured after {rss['warmup_s']:.0f} s of warm-up)",
            "",
            "| process | first MiB | last MiB | growth |",
            "|---|---|---|---|",
        ]
        for label, growth in sorted(rss["growth"].items()):
            lines.append(
                f"| {label} | {rss['first'][label] / 2**20:.1f} | {rss['last'][label] / 2**20:.1f} | "
                f"{growth * 100:+.1f}% |"
            )
    lines += ["", f"Files: {', '.join(summary['files'].values())}", ""]
    return "\n".join(lines)


def write_reports(summary: dict[str, Any], report_dir: Path) -> None:
    """Validate and write summary.json and summary.md into ``report_dir``."""
    validate(summary)
    (report_dir / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    (report_dir / "summary.md").write_text(markdown(summary))
