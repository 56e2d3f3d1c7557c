"""`schedgen health`: deep, bounded-time checks of every dependency, for on-call and scripts.

report = run_health(resolve_endpoints("local", project), load_thresholds(project))
report.exit_code   # 0 healthy, 1 degraded, 2 down
report.to_dict()   # the --json document (schema: schema.json next to this file)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from schedgen_ops.config import Config
from schedgen_ops.config.health import HealthThresholds, config_thresholds
from schedgen_ops.config.ops_loader import try_load_config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.health.endpoints import Endpoints, resolve_endpoints
from schedgen_ops.ops.health.model import COMPONENTS, CheckResult, HealthReport, Status, Verdict

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


def load_thresholds(
    project_dir: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    config: Config | None = None,
    warnings: list[str] | None = None,
) -> HealthThresholds:
    """Defaults < the profile's alerts < the config's ``health:`` (schedgen.yaml, --set) < ``overrides``.

    ``config`` is the already loaded `Config` (else it is loaded from ``project_dir``; a configuration
    that does not load leaves the defaults and a line in ``warnings``). Bad values name the key.
    """
    values: dict[str, Any] = {}
    if config is None and project_dir is not None:
        config = try_load_config(project_dir, warnings)
    if config is not None:
        values.update(config_thresholds(config))
    values.update(overrides or {})
    try:
        return HealthThresholds(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"]) or "health"
        raise SchedgenError(
            f"invalid health threshold {key}: {first['msg']}",
            code="bad_config",
            hint="see docs/HEALTH.md for every threshold and its unit",
        ) from exc
