"""What a health check reports: plain data, so the table, ``--json`` and the exit code share one source.

A check is one measured fact about one component (``postgres.connections``) with a status, the value it
measured, the threshold it was judged against and one line telling on-call what to do about it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

SCHEMA_VERSION = 1

#: Display order of components (also the order checks appear in ``--json``).
COMPONENTS = ("api", "postgres", "redis", "queue", "storage", "disk", "backup", "tls")


class Status(StrEnum):
    """Outcome of one check. ``unknown`` means "could not be judged" and never changes the verdict."""

    OK = "ok"
    WARN = "warn"
    CRITICAL = "critical"
    UNKNOWN = "unknown"


class Verdict(StrEnum):
    """Overall result; its exit code is what scripts branch on."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"

    @property
    def exit_code(self) -> int:
        return {"healthy": 0, "degraded": 1, "down": 2}[self.value]


@dataclass(frozen=True)
class Level:
    """A warn/critical pair. ``rising``: bigger is worse (latency); else smaller is worse (free disk)."""

    warn: float
    critical: float
    rising: bool = True

    def judge(self, value: float) -> Status:
        if self.rising:
            if value >= self.critical:
                return Status.CRITICAL
            return Status.WARN if value >= self.warn else Status.OK
        if value < self.critical:
            return Status.CRITICAL
        return Status.WARN if value < self.warn else Status.OK

    def describe(self, fmt: str = "{}") -> str:
        op = "≥" if self.rising else "<"
        return f"warn {op} {fmt.format(self.warn)}, critical {op} {fmt.format(self.critical)}"


@dataclass
class CheckResult:
    """One check's outcome: ``value`` is machine-readable (number/bool/str/None), ``measured`` human."""

    component: str
    name: str
    status: Status
    measured: str
    value: float | int | str | bool | None = None
    unit: str | None = None
    threshold: str | None = None
    hint: str | None = None
    duration_ms: float | None = None

    @property
    def id(self) -> str:
        return f"{self.component}.{self.name}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "component": self.component,
            "name": self.name,
            "status": self.status.value,
            "value": self.value,
            "unit": self.unit,
            "measured": self.measured,
            "threshold": self.threshold,
            "hint": self.hint,
            "duration_ms": None if self.duration_ms is None else round(self.duration_ms, 1),
        }


Value = float | int | str | bool | None

#: How a threshold in each unit is written ("warn ≥ 2 s"); a unit not listed is written as is.
UNIT_FORMATS = {"ratio": "{:.0%}", "s": "{:g} s", "ms": "{:.0f} ms", "days": "{:g} days"}


def outcome(
    component: str,
    name: str,
    status: Status,
    measured: str,
    *,
    value: Value = None,
    unit: str | None = None,
    threshold: str | None = None,
    hint: str | None = None,
) -> CheckResult:
    """A result that keeps its hint only when it is not ok: a hint tells on-call what to fix."""
    kept = None if status is Status.OK else hint
    return CheckResult(
        component, name, status, measured, value=value, unit=unit, threshold=threshold, hint=kept
    )


def passed(
    component: str,
    name: str,
    ok: bool,
    measured: str,
    *,
    failing: Status = Status.CRITICAL,
    value: Value = None,
    unit: str | None = None,
    threshold: str | None = None,
    hint: str,
) -> CheckResult:
    """A yes/no check: ok, else ``failing`` (critical unless said) with the hint."""
    status = Status.OK if ok else failing
    return outcome(component, name, status, measured, value=value, unit=unit, threshold=threshold, hint=hint)


def judged(
    component: str,
    name: str,
    level: Level,
    reading: float,
    measured: str,
    *,
    note: str = "",
    value: Value = None,
    unit: str | None = None,
    hint: str,
) -> CheckResult:
    """``reading`` judged against ``level``; the threshold column is the level in ``unit``, then ``note``."""
    threshold = level.describe(UNIT_FORMATS.get(unit or "", "{}")) + note
    status = level.judge(reading)
    return outcome(component, name, status, measured, value=value, unit=unit, threshold=threshold, hint=hint)


def verdict_of(checks: list[CheckResult]) -> Verdict:
    """Down when anything is critical, degraded when anything warns, else healthy."""
    statuses = {c.status for c in checks}
    if Status.CRITICAL in statuses:
        return Verdict.DOWN
    if Status.WARN in statuses:
        return Verdict.DEGRADED
    return Verdict.HEALTHY


def component_status(checks: list[CheckResult]) -> Status:
    """The worst status among a component's checks (unknown only when nothing else is known)."""
    order = [Status.CRITICAL, Status.WARN, Status.OK, Status.UNKNOWN]
    present = {c.status for c in checks}
    for status in order:
        if status in present:
            return status
    return Status.UNKNOWN


@dataclass
class HealthReport:
    """Everything one run of ``schedgen health`` found."""

    target: str
    checks: list[CheckResult]
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_ms: float = 0.0

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self.checks)

    @property
    def exit_code(self) -> int:
        return self.verdict.exit_code

    def by_component(self) -> dict[str, list[CheckResult]]:
        """Checks grouped by component, in `COMPONENTS` order (unknown components last)."""
        groups: dict[str, list[CheckResult]] = {}
        rank = {name: i for i, name in enumerate(COMPONENTS)}
        for check in sorted(self.checks, key=lambda c: rank.get(c.component, len(rank))):
            groups.setdefault(check.component, []).append(check)
        return groups

    def to_dict(self) -> dict[str, Any]:
        groups = self.by_component()
        counts = {status.value: 0 for status in Status}
        for check in self.checks:
            counts[check.status.value] += 1
        return {
            "schema_version": SCHEMA_VERSION,
            "target": self.target,
            "checked_at": self.started_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "duration_ms": round(self.duration_ms, 1),
            "verdict": self.verdict.value,
            "exit_code": self.exit_code,
            "summary": counts,
            "components": {name: component_status(checks).value for name, checks in groups.items()},
            "checks": [c.to_dict() for group in groups.values() for c in group],
        }
