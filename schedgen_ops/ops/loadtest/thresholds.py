"""Parse ``--threshold NAME=VALUE`` and judge a run's summary against its thresholds.

A threshold whose metric has no data (no uploads happened, /metrics had no RSS) fails: a CI gate
must not pass on figures it never saw.
"""

from __future__ import annotations

from typing import Any

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.loadtest.scenarios import STEP_THRESHOLDS, THRESHOLDS, ThresholdSpec


def parse_threshold(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` -> (name, value); ratios accept ``2%``; unknown names list the valid ones."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name or not raw.strip():
        raise SchedgenError(f"bad threshold {text!r}", code="usage", hint="write NAME=VALUE", exit_code=2)
    if name not in THRESHOLDS:
        raise SchedgenError(
            f"unknown threshold {name!r}",
            code="usage",
            hint="valid: " + ", ".join(sorted(THRESHOLDS)),
            exit_code=2,
        )
    raw = raw.strip().lower()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raw_bool = {"true": 1.0, "false": 0.0, "yes": 1.0, "no": 0.0}.get(raw)
        if raw_bool is None:
            raise SchedgenError(
                f"threshold {name} needs a number, got {raw!r}", code="usage", exit_code=2
            ) from None
        value = raw_bool
    return name, value


def merge_thresholds(defaults: dict[str, float], overrides: list[str]) -> dict[str, float]:
    """The scenario's thresholds with ``--threshold`` values replacing or adding entries."""
    merged = dict(defaults)
    for text in overrides:
        name, value = parse_threshold(text)
        merged[name] = value
    return merged


def metric_value(summary: dict[str, Any], path: str) -> float | None:
    """Read a dotted metric path from the summary ("endpoints.upload.p95_ms" looks up by name)."""
    node: Any = summary
    for part in path.split("."):
        if isinstance(node, list):
            node = next((item for item in node if item.get("name") == part), None)
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
        if node is None:
            return None
    if isinstance(node, bool):
        return 1.0 if node else 0.0
    if isinstance(node, int | float):
        return float(node)
    return None


def passes(spec: ThresholdSpec, actual: float, limit: float) -> bool:
    """Whether ``actual`` is on the passing side of ``limit``."""
    return actual < limit if spec.op == "<" else actual >= limit


def evaluate(summary: dict[str, Any], thresholds: dict[str, float]) -> list[dict[str, Any]]:
    """One result per threshold: name, metric, op, limit, actual (None = no data), passed, gate.

    In a stepped (stress) run the latency and error thresholds judge each step to find the breaking
    point; they are reported with ``scope: "step"`` and ``gate: false`` (the run is gated on
    ``sustained_users`` and ``recovered`` instead), their ``actual`` being the worst step value.
    """
    stepped = summary.get("sustained_users") is not None
    steps = [stage for stage in summary.get("stages", []) if stage.get("kind") == "step"]
    results = []
    for name, limit in thresholds.items():
        spec = THRESHOLDS[name]
        if stepped and name in STEP_THRESHOLDS:
            values = [stage[name] for stage in steps if stage.get(name) is not None]
            actual = max(values) if values else None
            passed = not any(actual_step >= limit for actual_step in values)
            scope, gate = "step", False
        else:
            actual = metric_value(summary, spec.metric)
            passed = actual is not None and passes(spec, actual, limit)
            scope, gate = "run", True
        results.append(
            {
                "name": name,
                "metric": spec.metric,
                "op": spec.op,
                "limit": limit,
                "unit": spec.unit,
                "actual": actual,
                "passed": passed,
                "scope": scope,
                "gate": gate,
                "description": spec.description,
            }
        )
    return results


def verdict(results: list[dict[str, Any]]) -> bool:
    """True when every gating threshold passed."""
    return all(result["passed"] for result in results if result["gate"])
