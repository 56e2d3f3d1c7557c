"""`schedgen health`: deep, bounded-time checks of every dependency, for on-call and scripts.

report = run_health(resolve_endpoints("local", project), load_thresholds(project))
report.exit_code   # 0 healthy, 1 degraded, 2 down
report.to_dict()   # the --json document (schema: schema.json next to this file)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from schedgen_ops.ops.health.endpoints import Endpoints, resolve_endpoints
from schedgen_ops.ops.health.model import COMPONENTS, CheckResult, HealthReport, Status, Verdict
from schedgen_ops.ops.health.thresholds import HealthThresholds, load_thresholds

SCHEMA_PATH = Path(__file__).with_name("schema.json")

__all__ = [
    "COMPONENTS",
    "CheckResult",
    "Endpoints",
    "HealthReport",
    "HealthThresholds",
    "Status",
    "Verdict",
    "json_schema",
    "load_thresholds",
    "resolve_endpoints",
    "run_health",
]


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema of ``schedgen health --json`` output."""
    return dict(json.loads(SCHEMA_PATH.read_text()))


def run_health(
    endpoints: Endpoints,
    thresholds: HealthThresholds,
    *,
    only: Iterable[str] | None = None,
    hard_deadline: float | None = None,
) -> HealthReport:
    """Run the selected components' probes concurrently; returns within the budget plus a small grace.

    ``hard_deadline`` (`time.monotonic` value) cuts every wait shorter when the caller has less time left.
    """
    from schedgen_ops.ops.health.checks import PROBES
    from schedgen_ops.ops.health.runner import run_probes

    wanted = set(only or COMPONENTS)
    probes = [p for p in PROBES if p.component in wanted]
    if not endpoints.domain:
        probes = [p for p in probes if p.component != "tls"]
    return run_probes(probes, endpoints, thresholds, target=endpoints.target, hard_deadline=hard_deadline)
