"""The readiness checklist's data: checks, the evidence they collect and the results they produce.

Checks are data (id, category, severity, what, why, fix, kind) plus an evaluation function, so the
registry can be listed, documented and suppressed without running anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

Category = Literal["reliability", "security", "scalability", "observability", "operations"]
Severity = Literal["warning", "danger"]
Kind = Literal["static", "live", "manual"]
#: What output a static check needs in scope; without it the check is skipped before it runs.
Scope = Literal["any-runtime", "compose-or-kubernetes"]
Status = Literal["pass", "fail", "error", "skip", "suppressed", "acknowledged", "pending"]

CATEGORIES: tuple[Category, ...] = ("reliability", "security", "scalability", "observability", "operations")
SEVERITIES: tuple[Severity, ...] = ("warning", "danger")
KINDS: tuple[Kind, ...] = ("static", "live", "manual")
STATUSES: tuple[Status, ...] = ("pass", "fail", "error", "skip", "suppressed", "acknowledged", "pending")

#: Statuses that count against the score (and, for danger checks, fail the run).
FAILING: frozenset[str] = frozenset({"fail", "error", "pending"})
#: Statuses that count as a pass in the score.
PASSING: frozenset[str] = frozenset({"pass", "acknowledged"})


class NotApplicable(Exception):
    """Raised by a check when it does not apply here (e.g. a Kubernetes check on a compose-only tree)."""


@dataclass(frozen=True)
class Evidence:
    """Where a value was found: file (relative to the tree or a URL), path inside the document, value."""

    file: str | None
    path: str | None
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "path": self.path, "value": _plain(self.value)}


@dataclass(frozen=True)
class Finding:
    """One observation of a check: ok or not, a one-line message and its evidence."""

    ok: bool
    message: str
    evidence: Evidence
    exempt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "message": self.message, "exempt": self.exempt, **self.evidence.to_dict()}


@dataclass(frozen=True)
class Check:
    """A readiness criterion. ``evaluate`` receives a context and returns findings (None for manual)."""

    id: str
    title: str
    category: Category
    severity: Severity
    kind: Kind
    why: str
    fix: str
    evaluate: Callable[[Any], list[Finding]] | None = field(default=None, compare=False, repr=False)
    needs: Scope | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "severity": self.severity,
            "kind": self.kind,
            "why": self.why,
            "fix": self.fix,
        }


CheckFunc = Callable[[Any], list[Finding]]
_CHECK_ATTR = "readiness_check"


def check(
    id: str,
    *,
    title: str,
    category: Category,
    severity: Severity,
    kind: Kind,
    why: str,
    fix: str,
    needs: Scope | None = None,
) -> Callable[[CheckFunc], CheckFunc]:
    """Decorator: mark ``func`` as the evaluation of the check the arguments describe.

    It only attaches the `Check` to the function; the registry collects it from the modules it lists.
    ``needs`` is the output the check judges (`evaluate.run_check` skips it when that is not in scope).
    """

    def wrap(func: CheckFunc) -> CheckFunc:
        setattr(func, _CHECK_ATTR, Check(id, title, category, severity, kind, why, fix, func, needs))
        return func

    return wrap


def checks_of(module: ModuleType) -> list[Check]:
    """The checks a module defines with `check`, in the order it defines them (imported ones not counted)."""
    found = []
    for value in vars(module).values():
        item = getattr(value, _CHECK_ATTR, None)
        if isinstance(item, Check) and getattr(value, "__module__", None) == module.__name__:
            found.append(item)
    return found


@dataclass(frozen=True)
class Acknowledgement:
    """Who confirmed a manual item, when and with what note."""

    by: str
    note: str
    at: str

    def to_dict(self) -> dict[str, str]:
        return {"by": self.by, "note": self.note, "at": self.at}


@dataclass
class Result:
    """The outcome of one check."""

    check: Check
    status: Status
    message: str
    findings: list[Finding] = field(default_factory=list)
    suppressed_reason: str | None = None
    acknowledgement: Acknowledgement | None = None

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.check.to_dict(),
            "status": self.status,
            "message": self.message,
            "suppressed_reason": self.suppressed_reason,
            "acknowledgement": self.acknowledgement.to_dict() if self.acknowledgement else None,
            "evidence": [f.to_dict() for f in self.findings],
        }


def _plain(value: Any) -> Any:
    """Make a value JSON-friendly (tuples, sets, paths and odd scalars become lists/strings)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)
