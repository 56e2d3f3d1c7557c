"""The registry of every readiness check: the check modules, listed in one place, and the manual items.

To add a check: write a function decorated with `model.check` in the check module of its concern (or a
new ``checks_<concern>.py``, then add its name to `CHECK_MODULES` below). The checklist orders checks
by kind and id, so where a check is defined never changes the output.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

from schedgen_ops.ops.readiness.manual import MANUAL_ITEMS
from schedgen_ops.ops.readiness.model import Check, checks_of

#: The modules that define checks, by name: one list, imported on first use (so importing the package
#: stays cheap). The architecture test reads the check modules' own imports; these are same-package.
CHECK_MODULES = (
    "checks_availability",
    "checks_datastores",
    "checks_edge",
    "checks_k8s",
    "checks_live",
    "checks_observability",
    "checks_page",
    "checks_pitr",
    "checks_privilege",
    "checks_privilege_live",
    "checks_secrets",
    "checks_workloads",
)


def check_modules() -> tuple[ModuleType, ...]:
    """Every module that defines checks, in `CHECK_MODULES` order."""
    return tuple(importlib.import_module(f"{__package__}.{name}") for name in CHECK_MODULES)


@functools.cache
def _registry() -> dict[str, Check]:
    """id -> check, from the check modules and the manual items; ids are unique across the checklist."""
    out: dict[str, Check] = {}
    for item in [*(c for module in check_modules() for c in checks_of(module)), *MANUAL_ITEMS]:
        if item.id in out:
            raise ValueError(f"duplicate readiness check id {item.id!r}")
        out[item.id] = item
    return out


def all_checks() -> list[Check]:
    """Every check, in a stable order: static, live, then manual, each by id."""
    order = {"static": 0, "live": 1, "manual": 2}
    return sorted(_registry().values(), key=lambda c: (order[c.kind], c.id))


def get(check_id: str) -> Check:
    """The check with this id, or KeyError."""
    return _registry()[check_id]


def ids() -> list[str]:
    return [c.id for c in all_checks()]
