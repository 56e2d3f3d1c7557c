"""Grandfather-father-son retention as a pure function of the backup history.

Semantics (as restic's --keep-daily/weekly/monthly): for the last N days (ISO weeks, months) that have
a usable backup, keep the newest usable backup of that period. "Usable" means complete and not failed
verification. On top of that the newest verified backup is always kept, whatever its age. Everything
else is pruned. Periods are taken in UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Policy:
    keep_daily: int = 7
    keep_weekly: int = 4
    keep_monthly: int = 12


@dataclass(frozen=True)
class Snapshot:
    """What retention needs to know about one complete backup set."""

    id: str
    created: datetime
    verified: bool = False
    verification_failed: bool = False


@dataclass(frozen=True)
class Selection:
    keep: dict[str, list[str]]  # id -> reasons ("daily 2026-11-28", "newest verified", ...)
    prune: list[str]


def _day(moment: datetime) -> Hashable:
    return moment.date()


def _week(moment: datetime) -> Hashable:
    year, week, _ = moment.isocalendar()
    return (year, week)


def _month(moment: datetime) -> Hashable:
    return (moment.year, moment.month)


def _bucket_keep(
    usable: Sequence[Snapshot], count: int, key: Callable[[datetime], Hashable]
) -> dict[str, Hashable]:
    """Newest snapshot of each of the ``count`` most recent periods: id -> period."""
    chosen: dict[str, Hashable] = {}
    seen: set[Hashable] = set()
    for snap in usable:  # newest first
        period = key(snap.created)
        if period in seen:
            continue
        if len(seen) >= count:
            break
        seen.add(period)
        chosen[snap.id] = period
    return chosen


def select(history: Sequence[Snapshot], policy: Policy) -> Selection:
    """Which backups to keep (with the reasons) and which to prune; ids are unique."""
    ordered = sorted(history, key=lambda s: (s.created, s.id), reverse=True)
    usable = [s for s in ordered if not s.verification_failed]
    keep: dict[str, list[str]] = {}
    for label, count, key in (
        ("daily", policy.keep_daily, _day),
        ("weekly", policy.keep_weekly, _week),
        ("monthly", policy.keep_monthly, _month),
    ):
        for snap_id, period in _bucket_keep(usable, count, key).items():
            keep.setdefault(snap_id, []).append(f"{label} {period}")
    newest_verified = next((s for s in ordered if s.verified), None)
    if newest_verified is not None:
        keep.setdefault(newest_verified.id, []).append("newest verified")
    prune = [s.id for s in ordered if s.id not in keep]
    return Selection(keep=keep, prune=prune)
