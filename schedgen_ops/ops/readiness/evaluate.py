"""Run checks against a context: suppression, acknowledgements, the Polaris score and the exit code."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from schedgen_ops import __version__
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.readiness import registry
from schedgen_ops.ops.readiness.context import Context
from schedgen_ops.ops.readiness.exemptions import apply_exemptions
from schedgen_ops.ops.readiness.model import (
    FAILING,
    PASSING,
    Acknowledgement,
    Check,
    NotApplicable,
    Result,
)

EXIT_PASS = 0
EXIT_DANGER = 3
EXIT_SCORE = 4


@dataclass
class Report:
    """All results of one run plus what they add up to."""

    results: list[Result]
    profile: str | None = None
    targets: list[str] = field(default_factory=list)
    live: bool = False
    source: str | None = None
    min_score: float | None = None
    generated_at: str = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    )

    @property
    def score(self) -> float:
        return score(self.results)

    def counts(self) -> dict[str, int]:
        out = {
            status: 0 for status in ("pass", "fail", "error", "skip", "suppressed", "acknowledged", "pending")
        }
        for result in self.results:
            out[result.status] += 1
        return out

    def failed_dangers(self) -> list[Result]:
        return [r for r in self.results if r.failing and r.check.severity == "danger"]

    @property
    def exit_code(self) -> int:
        if self.failed_dangers():
            return EXIT_DANGER
        if self.min_score is not None and self.score < self.min_score:
            return EXIT_SCORE
        return EXIT_PASS

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "tool": {"name": "schedgen", "version": __version__},
            "generated_at": self.generated_at,
            "profile": self.profile,
            "targets": self.targets,
            "live": self.live,
            "source": self.source,
            "score": self.score,
            "min_score": self.min_score,
            "exit_code": self.exit_code,
            "summary": self.counts(),
            "results": [r.to_dict() for r in self.results],
        }


def score(results: Iterable[Result]) -> float:
    """Polaris score in percent: passes x2 / (passes x2 + failed warnings + failed dangers x2).

    Skipped and suppressed checks do not count; acknowledged manual items count as passes and
    pending ones as failures of their severity. 100 when nothing counted.
    """
    passes = warnings = dangers = 0
    for result in results:
        if result.status in PASSING:
            passes += 1
        elif result.status in FAILING:
            if result.check.severity == "danger":
                dangers += 1
            else:
                warnings += 1
    denominator = passes * 2 + warnings + dangers * 2
    return 100.0 if denominator == 0 else round(100.0 * passes * 2 / denominator, 1)


def validate_ignore(ignore: Mapping[str, Any]) -> dict[str, str]:
    """``checklist.ignore`` entries: known ids, each with a non-empty reason."""
    known = registry.ids()
    out: dict[str, str] = {}
    for check_id, reason in ignore.items():
        if check_id not in known:
            near = difflib.get_close_matches(str(check_id), known, n=1)
            raise SchedgenError(
                f"checklist.ignore names an unknown check {check_id!r}",
                code="unknown_check",
                hint=f"did you mean {near[0]!r}?" if near else "`schedgen checklist list` shows every id",
            )
        if not isinstance(reason, str) or not reason.strip():
            raise SchedgenError(
                f"checklist.ignore.{check_id} needs a reason",
                code="ignore_without_reason",
                hint=f"write `{check_id}: <why this check does not apply>` in schedgen.yaml",
            )
        out[str(check_id)] = reason.strip()
    return out


def run_check(item: Check, ctx: Context) -> Result:
    """Evaluate one static or live check; exceptions become an `error` result, never a crash."""
    assert item.evaluate is not None
    try:
        if item.needs is not None:
            ctx.need(item.needs)
        findings = item.evaluate(ctx)
    except NotApplicable as exc:
        return Result(item, "skip", str(exc) or "not applicable")
    except Exception as exc:  # a check that cannot decide has not proven anything
        return Result(item, "error", f"{type(exc).__name__}: {exc}")
    if not findings:
        return Result(item, "skip", "nothing to check")
    findings = apply_exemptions(ctx, item.id, findings)
    bad = [f for f in findings if not f.ok]
    if bad:
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        return Result(item, "fail", bad[0].message + more, findings)
    exempt = [f for f in findings if f.exempt]
    if exempt:
        others = len(findings) - len(exempt)
        message = f"{others} ok, {len(exempt)} exempt: " + "; ".join(f.message for f in exempt)
    else:
        message = findings[0].message if len(findings) == 1 else f"{len(findings)} ok"
    return Result(item, "pass", message, findings)


def evaluate(
    ctx: Context,
    *,
    live: bool = False,
    ignore: Mapping[str, Any] | None = None,
    acks: Mapping[str, Acknowledgement] | None = None,
    only: Iterable[str] | None = None,
    min_score: float | None = None,
    source: str | None = None,
) -> Report:
    """Run the checklist: static checks, live checks when ``live``, and the manual items."""
    ignored = validate_ignore(ignore or {})
    acks = acks or {}
    wanted = set(only) if only else None
    for check_id in sorted(wanted or ()):
        if check_id not in registry.ids():
            near = difflib.get_close_matches(check_id, registry.ids(), n=1)
            raise SchedgenError(
                f"--only names an unknown check {check_id!r}",
                code="unknown_check",
                hint=f"did you mean {near[0]!r}?" if near else "`schedgen checklist list` shows every id",
            )
    results: list[Result] = []
    for item in registry.all_checks():
        if wanted is not None and item.id not in wanted:
            continue
        if item.kind == "live" and not live:
            continue
        if item.id in ignored:
            results.append(Result(item, "suppressed", "suppressed in schedgen.yaml", [], ignored[item.id]))
            continue
        if item.kind == "manual":
            ack = acks.get(item.id)
            if ack:
                results.append(
                    Result(item, "acknowledged", f"acknowledged by {ack.by} on {ack.at}", [], None, ack)
                )
            else:
                results.append(Result(item, "pending", "not yet acknowledged (schedgen checklist ack)"))
            continue
        results.append(run_check(item, ctx))
    return Report(
        results=results,
        profile=ctx.profile,
        targets=sorted(ctx.targets),
        live=live,
        source=source,
        min_score=min_score,
    )
