"""The registry of every readiness check, filled by the check modules through the `check` decorator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schedgen_ops.ops.readiness.model import Category, Check, Finding, Kind, Severity

_REGISTRY: dict[str, Check] = {}

CheckFunc = Callable[[Any], list[Finding]]


def register(item: Check) -> Check:
    """Add a check; ids are unique across the whole checklist."""
    if item.id in _REGISTRY:
        raise ValueError(f"duplicate readiness check id {item.id!r}")
    _REGISTRY[item.id] = item
    return item


def check(
    id: str,
    *,
    title: str,
    category: Category,
    severity: Severity,
    kind: Kind,
    why: str,
    fix: str,
) -> Callable[[CheckFunc], CheckFunc]:
    """Decorator: register ``func`` as the evaluation of a check described by the arguments."""

    def wrap(func: CheckFunc) -> CheckFunc:
        register(Check(id, title, category, severity, kind, why, fix, func))
        return func

    return wrap


def all_checks() -> list[Check]:
    """Every registered check (loading the check modules first), in a stable order."""
    _load()
    order = {"static": 0, "live": 1, "manual": 2}
    return sorted(_REGISTRY.values(), key=lambda c: (order[c.kind], c.id))


def get(check_id: str) -> Check:
    """The check with this id, or KeyError."""
    _load()
    return _REGISTRY[check_id]


def ids() -> list[str]:
    return [c.id for c in all_checks()]


def _load() -> None:
    # Imported for their registration side effect.
    from schedgen_ops.ops.readiness import (  # noqa: F401
        checks_k8s,
        checks_live,
        checks_observability,
        checks_page,
        checks_pitr,
        checks_privilege,
        checks_privilege_live,
        checks_stack,
        checks_workloads,
        manual,
    )
