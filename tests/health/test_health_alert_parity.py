"""One source: the thresholds `schedgen health` judges with equal the rendered Prometheus alert rules'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from schedgen_ops.config import load_config
from schedgen_ops.config.secrets import generate_secrets
from schedgen_ops.ops.health import HealthThresholds, load_thresholds
from schedgen_ops.render.engine import render_files

#: alert -> the health threshold pair it shares (same unit as the rule's number)
PARITY = {
    "QueueBacklog": "queue_depth",
    "OldestQueuedJobTooOld": "queue_oldest_job",
    "QueuedJobNotWaitingInRedis": "queue_oldest_job",
    "JobFailureRatioHigh": "job_failure_ratio",
    "PostgresConnectionsHigh": "postgres_connections",
    "RedisMemoryHigh": "redis_memory",
    "BackupTooOld": "backup_age",
    "ApiHighLatencyP95": "api_latency",
}
_NUMBER_AFTER_GT = re.compile(r">\s*([0-9.]+)")


def _field(stem: str, severity: str, th: HealthThresholds) -> float:
    level = {"warning": "warn", "critical": "critical"}[severity]
    for name in HealthThresholds.model_fields:
        if name.startswith(stem) and (f"_{level}_" in name or name.endswith(f"_{level}")):
            return float(getattr(th, name))
    raise AssertionError(f"no {level} threshold for {stem}")


def _rendered_rules(project: Path) -> dict[str, dict[str, object]]:
    files, _ = render_files(load_config(project), generate_secrets(), "compose", project)
    doc = yaml.safe_load(files["compose/prometheus/rules/schedgen.yml"])
    return {rule["alert"]: rule for group in doc["groups"] for rule in group["rules"]}


@pytest.mark.parametrize("profile", ["small", "medium", "large"])
def test_health_thresholds_equal_the_rendered_alert_rules(tmp_path: Path, profile: str) -> None:
    (tmp_path / "schedgen.yaml").write_text(f"profile: {profile}\nalerts:\n  oldest_job_age_s: 900\n")
    rules = _rendered_rules(tmp_path)
    th = load_thresholds(tmp_path)
    assert th.queue_oldest_job_critical_s == 900  # the project's override reaches both
    for alert, stem in PARITY.items():
        rule = rules[alert]
        match = _NUMBER_AFTER_GT.search(str(rule["expr"]))
        assert match, f"{alert}: no threshold in {rule['expr']!r}"
        severity = str(rule["labels"]["severity"])  # type: ignore[index]
        assert _field(stem, severity, th) == pytest.approx(float(match.group(1))), alert
    # NoWorkers fires at zero live workers (critical): health is critical below one worker.
    assert "== 0" in str(rules["NoWorkers"]["expr"]) and rules["NoWorkers"]["labels"] == {
        "severity": "critical"
    }
    assert th.workers_min == 1
