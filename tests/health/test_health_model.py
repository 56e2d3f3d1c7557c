"""Verdicts, exit codes, threshold levels and loading, and the --json schema."""

from __future__ import annotations

import os
from pathlib import Path

import jsonschema
import pytest

from schedgen_ops.config.health import HealthThresholds, from_alerts
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.health import CheckResult, HealthReport, Status, Verdict, json_schema, load_thresholds
from schedgen_ops.ops.health.model import Level


def _check(component: str, name: str, status: Status, hint: str | None = "do something") -> CheckResult:
    return CheckResult(component, name, status, "measured", value=1, unit="s", threshold="t", hint=hint)


@pytest.mark.parametrize(
    ("statuses", "verdict", "code"),
    [
        ([Status.OK, Status.OK], Verdict.HEALTHY, 0),
        ([Status.OK, Status.UNKNOWN], Verdict.HEALTHY, 0),
        ([Status.OK, Status.WARN, Status.UNKNOWN], Verdict.DEGRADED, 1),
        ([Status.WARN, Status.CRITICAL], Verdict.DOWN, 2),
        ([], Verdict.HEALTHY, 0),
    ],
)
def test_verdict_and_exit_code(statuses: list[Status], verdict: Verdict, code: int) -> None:
    report = HealthReport("local", [_check("redis", f"c{i}", s) for i, s in enumerate(statuses)])
    assert report.verdict is verdict
    assert report.exit_code == code
    assert report.to_dict()["exit_code"] == code


def test_report_document_matches_schema_and_groups_by_component() -> None:
    checks = [
        _check("backup", "age", Status.UNKNOWN),
        _check("api", "liveness", Status.OK, hint=None),
        _check("redis", "eviction_policy", Status.CRITICAL),
        _check("api", "latency", Status.WARN),
    ]
    doc = HealthReport("compose", checks).to_dict()
    jsonschema.validate(doc, json_schema())
    assert [c["id"] for c in doc["checks"]] == [
        "api.liveness",
        "api.latency",
        "redis.eviction_policy",
        "backup.age",
    ]
    assert doc["components"] == {"api": "warn", "redis": "critical", "backup": "unknown"}
    assert doc["summary"] == {"ok": 1, "warn": 1, "critical": 1, "unknown": 1}


def test_schema_rejects_a_non_ok_check_without_hint() -> None:
    doc = HealthReport("local", [_check("api", "liveness", Status.CRITICAL, hint=None)]).to_dict()
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, json_schema())


def test_levels_rising_and_falling() -> None:
    rising = Level(0.8, 0.95)
    assert [rising.judge(v) for v in (0.5, 0.8, 0.94, 0.95, 1.0)] == [
        Status.OK,
        Status.WARN,
        Status.WARN,
        Status.CRITICAL,
        Status.CRITICAL,
    ]
    falling = Level(0.15, 0.05, rising=False)
    assert [falling.judge(v) for v in (0.5, 0.15, 0.1, 0.049)] == [
        Status.OK,
        Status.OK,
        Status.WARN,
        Status.CRITICAL,
    ]
    assert rising.describe("{:.0%}") == "warn ≥ 80%, critical ≥ 95%"


def test_alert_values_become_the_matching_severity_level() -> None:
    derived = from_alerts(
        {
            "queue_backlog": 50,
            "oldest_job_age_s": 600,
            "job_failure_ratio": 0.1,
            "postgres_connections_ratio": 0.8,
            "redis_memory_ratio": 0.8,
            "backup_max_age_h": 26,
            "latency_p95_s": 1.0,
        }
    )
    th = HealthThresholds(**derived)
    assert th.queue_depth_warn == 50  # QueueBacklog is a warning alert
    assert th.queue_oldest_job_critical_s == 600  # OldestQueuedJobTooOld is critical
    assert th.redis_memory_critical_ratio == 0.8  # RedisMemoryHigh is critical
    assert th.postgres_connections_warn_ratio == 0.8 and th.postgres_connections_critical_ratio == 0.95
    assert th.backup_age_critical_s == 26 * 3600


def test_project_overrides_and_bad_values(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\nalerts:\n  queue_backlog: 7\n")
    th = load_thresholds(tmp_path, {"check_budget_s": 1.5})
    assert th.queue_depth_warn == 7 and th.queue_depth_critical == 70
    assert th.check_budget_s == 1.5
    with pytest.raises(SchedgenError, match="disk_free_critical_ratio"):
        load_thresholds(tmp_path, {"disk_free_critical_ratio": 0.5})
    with pytest.raises(SchedgenError, match="queue_depth_critical"):
        load_thresholds(tmp_path, {"queue_depth_critical": 3})


def test_broken_configuration_falls_back_to_defaults_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\nalertz: {}\n")
    warnings: list[str] = []
    th = load_thresholds(tmp_path, warnings=warnings)
    assert th == HealthThresholds()
    assert warnings and "alertz" in warnings[0]


def test_service_urls_in_the_environment_do_not_hide_the_project_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On-call exports SCHEDGEN_REDIS_URL for the command; the profile's thresholds must still apply."""
    monkeypatch.setenv("SCHEDGEN_REDIS_URL", "redis://127.0.0.1:6379/0")
    (tmp_path / "schedgen.yaml").write_text("profile: small\nalerts:\n  queue_backlog: 9\n")
    warnings: list[str] = []
    assert load_thresholds(tmp_path, warnings=warnings).queue_depth_warn == 9
    assert warnings == []
    assert os.environ["SCHEDGEN_REDIS_URL"] == "redis://127.0.0.1:6379/0"  # restored after the load
