"""GFS retention: property tests of the pure selection, and prune on a real backup directory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from schedgen_ops.cli.main import main
from schedgen_ops.ops.backup.catalog import list_backups
from schedgen_ops.ops.backup.manifest import Manifest, Verification, write_manifest
from schedgen_ops.ops.backup.retention import Policy, Snapshot, select

START = datetime(2024, 1, 1, tzinfo=UTC)


@st.composite
def histories(draw):
    offsets = draw(st.lists(st.integers(0, 2 * 365 * 24 * 60), min_size=0, max_size=60, unique=True))
    snaps = []
    for n, minutes in enumerate(sorted(offsets)):
        state = draw(st.sampled_from(["unverified", "verified", "failed"]))
        snaps.append(
            Snapshot(
                id=f"b{n:03d}",
                created=START + timedelta(minutes=minutes),
                verified=state == "verified",
                verification_failed=state == "failed",
            )
        )
    return snaps


policies = st.builds(Policy, st.integers(1, 10), st.integers(0, 6), st.integers(0, 14))


def reference_gfs(history, policy):
    """A second, deliberately naive statement of the rule: newest usable backup per period, for the
    `count` most recent periods that have one."""
    usable = [s for s in history if not s.verification_failed]
    keep = set()
    for count, period in (
        (policy.keep_daily, lambda d: d.date()),
        (policy.keep_weekly, lambda d: tuple(d.isocalendar())[:2]),
        (policy.keep_monthly, lambda d: (d.year, d.month)),
    ):
        newest = {}
        for snap in usable:
            key = period(snap.created)
            if key not in newest or snap.created > newest[key].created:
                newest[key] = snap
        for key in sorted(newest, reverse=True)[:count]:
            keep.add(newest[key].id)
    verified = [s for s in history if s.verified]
    if verified:
        keep.add(max(verified, key=lambda s: s.created).id)
    return keep


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_keeps_exactly_the_gfs_set(history, policy):
    selection = select(history, policy)
    assert set(selection.keep) == reference_gfs(history, policy)
    assert set(selection.keep) | set(selection.prune) == {s.id for s in history}
    assert not set(selection.keep) & set(selection.prune)


@settings(max_examples=300, deadline=None)
@given(histories(), policies)
def test_never_deletes_the_newest_verified_backup(history, policy):
    verified = [s for s in history if s.verified]
    selection = select(history, policy)
    if verified:
        newest = max(verified, key=lambda s: s.created)
        assert newest.id in selection.keep
        assert "newest verified" in selection.keep[newest.id]


@settings(max_examples=200, deadline=None)
@given(histories(), policies)
def test_the_newest_usable_backup_is_always_kept_and_the_set_is_bounded(history, policy):
    selection = select(history, policy)
    usable = [s for s in history if not s.verification_failed]
    if usable:
        assert max(usable, key=lambda s: s.created).id in selection.keep
    assert len(selection.keep) <= policy.keep_daily + policy.keep_weekly + policy.keep_monthly + 1


@settings(max_examples=100, deadline=None)
@given(histories(), policies)
def test_selection_is_idempotent(history, policy):
    first = select(history, policy)
    kept = [s for s in history if s.id in first.keep]
    assert set(select(kept, policy).keep) == set(first.keep)


def test_daily_backups_for_two_years_keep_7_4_12():
    history = [Snapshot(id=f"d{n}", created=START + timedelta(days=n, hours=2)) for n in range(730)]
    selection = select(history, Policy())
    # 7 dailies; weeks/months overlap with them for the newest periods.
    assert 7 + 4 + 12 - 3 <= len(selection.keep) <= 23
    assert "d729" in selection.keep and "d0" not in selection.keep


def _write_set(directory, backup_id, created, status="passed"):
    path = directory / backup_id
    path.mkdir(parents=True)
    manifest = Manifest(id=backup_id, status="complete", target="local", started_at=created.isoformat())
    if status:
        manifest.record_verification(
            Verification(status=status, level="standard", verified_at=created.isoformat(), duration_s=0.1)
        )
    write_manifest(path, manifest)


def test_prune_removes_what_the_selection_drops_and_debris(tmp_path, capsys):
    backups = tmp_path / "backups"
    for n in range(10):
        created = START + timedelta(days=n)
        _write_set(backups, created.strftime("%Y%m%dT%H%M%SZ"), created, status="passed" if n == 2 else None)
    newest_verified = (START + timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    (backups / "20240201T000000Z.failed").mkdir()
    (backups / "20240202T000000Z.partial").mkdir()

    assert (
        main(
            [
                "backup",
                "prune",
                "--dir",
                str(backups),
                "--keep-daily",
                "3",
                "--keep-weekly",
                "0",
                "--keep-monthly",
                "0",
                "--dry-run",
            ]
        )
        == 0
    )
    assert len(list_backups(backups)) == 12  # dry run: nothing removed
    capsys.readouterr()

    assert (
        main(
            [
                "backup",
                "prune",
                "--dir",
                str(backups),
                "--keep-daily",
                "3",
                "--keep-weekly",
                "0",
                "--keep-monthly",
                "0",
                "--json",
            ]
        )
        == 0
    )
    import json

    report = json.loads(capsys.readouterr().out)
    remaining = sorted(e.id for e in list_backups(backups))
    expected_daily = [(START + timedelta(days=n)).strftime("%Y%m%dT%H%M%SZ") for n in (7, 8, 9)]
    assert remaining == sorted([newest_verified, *expected_daily])
    assert report["keep"][newest_verified] == ["newest verified"]
    assert sorted(report["debris"]) == ["20240201T000000Z.failed", "20240202T000000Z.partial"]
