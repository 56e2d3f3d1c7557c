"""Run the probes concurrently, each inside its own time budget, and never wait past the deadline.

Every probe sets socket-level timeouts from its `Deadline` (connect_timeout, socket_timeout, httpx
timeouts), so a hung dependency makes the probe fail on its own. The runner does not rely on that alone:
probes run in daemon threads and the runner stops waiting at the budget, reporting the probe as timed
out. A thread is never cancelled; a late one is simply ignored and cannot keep the process alive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schedgen_ops.config.health import HealthThresholds
from schedgen_ops.ops.health.endpoints import Endpoints
from schedgen_ops.ops.health.model import CheckResult, HealthReport, Status

#: Grace added to a probe's budget before the runner gives up on it (thread start, result hand-over).
GRACE_S = 0.25


class Deadline:
    """A monotonic deadline; probes size every socket timeout with `remaining`.

    ``hard_end`` (monotonic) caps it at the command's own limit, whatever the budget says.
    """

    def __init__(self, budget_s: float, hard_end: float | None = None) -> None:
        self.budget_s = budget_s
        self.start = time.monotonic()
        self.end = self.start + budget_s if hard_end is None else min(self.start + budget_s, hard_end)

    def remaining(self, floor: float = 0.05) -> float:
        return max(floor, self.end - time.monotonic())

    def elapsed_ms(self) -> float:
        return (time.monotonic() - self.start) * 1000


@dataclass
class ProbeContext:
    """What a probe gets: where to look, what to judge against, and how long it may take."""

    endpoints: Endpoints
    thresholds: HealthThresholds
    deadline: Deadline


ProbeFn = Callable[[ProbeContext], list[CheckResult]]


@dataclass(frozen=True)
class Probe:
    """One unit of concurrent work: it gathers facts with one connection and returns several checks.

    ``name`` identifies the check reported when the probe itself times out or crashes.
    """

    component: str
    name: str
    run: ProbeFn
    timeout_hint: str


def _failure(probe: Probe, status: Status, measured: str, hint: str, elapsed_ms: float) -> CheckResult:
    return CheckResult(
        component=probe.component,
        name=probe.name,
        status=status,
        measured=measured,
        threshold=None,
        hint=hint,
        duration_ms=elapsed_ms,
    )


def run_probes(
    probes: Iterable[Probe],
    endpoints: Endpoints,
    thresholds: HealthThresholds,
    *,
    target: str,
    hard_deadline: float | None = None,
) -> HealthReport:
    """Start every probe at once and collect what finished within its budget.

    ``hard_deadline`` (a `time.monotonic` value) is the latest moment to stop waiting, e.g. what is left
    of the command's 5 s after a slow interpreter start; a probe cut short by it is still reported as
    not answering (on-call must never see green for a dependency nobody heard from).
    """
    started_at = datetime.now(UTC)
    start = time.monotonic()
    budget = thresholds.check_budget_s
    slots: list[tuple[Probe, Deadline, list[list[CheckResult] | BaseException]]] = []
    threads: list[threading.Thread] = []
    for probe in probes:
        deadline = Deadline(budget, hard_deadline)
        box: list[list[CheckResult] | BaseException] = []
        ctx = ProbeContext(endpoints=endpoints, thresholds=thresholds, deadline=deadline)

        def work(probe: Probe = probe, ctx: ProbeContext = ctx, box: list[Any] = box) -> None:
            try:
                results = probe.run(ctx)
                elapsed = ctx.deadline.elapsed_ms()
                for result in results:
                    if result.duration_ms is None:
                        result.duration_ms = elapsed
                box.append(results)
            except BaseException as exc:  # a probe bug must not take the others down
                box.append(exc)

        thread = threading.Thread(target=work, name=f"health-{probe.component}.{probe.name}", daemon=True)
        slots.append((probe, deadline, box))
        threads.append(thread)
        thread.start()
    give_up = start + budget + GRACE_S
    if hard_deadline is not None:
        give_up = min(give_up, hard_deadline)
    for thread in threads:
        thread.join(timeout=max(0.0, give_up - time.monotonic()))
    checks: list[CheckResult] = []
    for probe, deadline, box in slots:
        if not box:
            waited = deadline.elapsed_ms() / 1000
            cut_short = waited < budget
            measured = f"no answer within {min(waited, budget):.1f} s" + (
                " (cut short by the command's 5 s limit)" if cut_short else ""
            )
            hint = probe.timeout_hint + (
                "; the host is slow, rerun with --only to confirm" if cut_short else ""
            )
            checks.append(_failure(probe, Status.CRITICAL, measured, hint, deadline.elapsed_ms()))
            continue
        outcome = box[0]
        if isinstance(outcome, BaseException):
            checks.append(
                _failure(
                    probe,
                    Status.UNKNOWN,
                    f"check failed: {type(outcome).__name__}: {outcome}"[:200],
                    "this is a bug in schedgen health; rerun with --debug and report it",
                    deadline.elapsed_ms(),
                )
            )
            continue
        checks.extend(outcome)
    report = HealthReport(target=target, checks=checks, started_at=started_at)
    report.duration_ms = (time.monotonic() - start) * 1000
    return report
