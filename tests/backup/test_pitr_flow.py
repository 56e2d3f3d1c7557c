"""The order every point-in-time restore shares (pitr_flow.py), without a server: what happens to the
writers, the recovered copy and the report when each step of the swap window fails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.create import BackupRequest
from schedgen_ops.ops.backup.pitr_flow import PitrRestoreReport, swap_with_writers_stopped
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget
from schedgen_ops.ops.backup.progress import Reporter
from schedgen_ops.ops.backup.restore import RestoreFailed, RestoreRequest, _InDoubt
from schedgen_ops.ops.backup.signing import SigningKey
from schedgen_ops.ops.backup.targets import LocalTarget

#: Nothing listens on port 1: a safety set against it fails at once.
_UNREACHABLE = "postgresql://schedgen@127.0.0.1:1/schedgen"


@dataclass
class _Writers:
    """Writers that record what the restore asked of them, in the same log as the steps."""

    log: list[str]

    def stop(self) -> list[str]:
        self.log.append("stop writers")
        return ["api", "pdf-worker"]

    def start(self, names: Sequence[str]) -> list[str]:
        self.log.append("start writers")
        return list(names)


@dataclass
class _Request:
    target: RecoveryTarget
    base: RestoreRequest
    safety_request: BackupRequest | None = None


def _setup(tmp_path: Path, signing_key: SigningKey) -> tuple[_Request, PitrRestoreReport, list[str]]:
    log: list[str] = []
    (tmp_path / "backups").mkdir()  # the restore lock's directory, as restore_to leaves it
    base = RestoreRequest(
        target=LocalTarget(_UNREACHABLE),
        directory=tmp_path / "backups",
        backup_id="pitr:latest",
        key=signing_key,
        writers=_Writers(log),
    )
    return _Request(RecoveryTarget(), base), PitrRestoreReport(backup_id="pitr:latest"), log


def _step(log: list[str], name: str, fail: BaseException | None = None) -> Callable[[], None]:
    def run() -> None:
        log.append(name)
        if fail is not None:
            raise fail

    return run


def test_a_swap_that_succeeds_moves_then_starts_then_restarts_the_writers(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    request, report, log = _setup(tmp_path, signing_key)
    swap_with_writers_stopped(
        request,
        report,
        Reporter(quiet=True),
        move_in=_step(log, "move in"),
        start=_step(log, "start postgres"),
        discard=_step(log, "discard"),
    )
    assert log == ["stop writers", "move in", "start postgres", "start writers"]
    assert report.restarted == ["api", "pdf-worker"] and report.left_stopped == []
    assert [e["event"] for e in report.timeline] == ["stop writers", "swap", "start writers"]


def test_a_failed_move_discards_the_copy_and_starts_the_writers_again(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    request, report, log = _setup(tmp_path, signing_key)
    with pytest.raises(RestoreFailed) as raised:
        swap_with_writers_stopped(
            request,
            report,
            Reporter(quiet=True),
            move_in=_step(log, "move in", SchedgenError("no space", code="restore_failed")),
            start=_step(log, "start postgres"),
            discard=_step(log, "discard"),
        )
    assert log == ["stop writers", "move in", "start writers", "discard"]
    assert raised.value.code == "restore_failed" and raised.value.report is report
    assert "The writers were started again: api, pdf-worker" in raised.value.message


def test_a_server_that_does_not_start_on_the_moved_copy_leaves_the_writers_stopped(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    request, report, log = _setup(tmp_path, signing_key)
    with pytest.raises(RestoreFailed) as raised:
        swap_with_writers_stopped(
            request,
            report,
            Reporter(quiet=True),
            move_in=_step(log, "move in"),
            start=_step(log, "start postgres", _InDoubt("did not start", code="restore_failed")),
            discard=_step(log, "discard"),
        )
    # Moved in: the copy is the live data now, so it is kept; nothing may write to it unseen.
    assert log == ["stop writers", "move in", "start postgres"]
    assert report.left_stopped == ["api", "pdf-worker"] and report.restarted == []
    assert "The writers were left stopped: api, pdf-worker" in raised.value.message


def test_an_interrupt_before_the_move_discards_the_copy_and_restarts_the_writers(
    tmp_path: Path, signing_key: SigningKey
) -> None:
    request, report, log = _setup(tmp_path, signing_key)
    with pytest.raises(KeyboardInterrupt):
        swap_with_writers_stopped(
            request,
            report,
            Reporter(quiet=True),
            move_in=_step(log, "move in", KeyboardInterrupt()),
            start=_step(log, "start postgres"),
            discard=_step(log, "discard"),
        )
    assert log == ["stop writers", "move in", "start writers", "discard"]


def test_a_failed_safety_set_moves_nothing(tmp_path: Path, signing_key: SigningKey) -> None:
    request, report, log = _setup(tmp_path, signing_key)
    request.safety_request = BackupRequest(
        target=LocalTarget(_UNREACHABLE), directory=tmp_path / "backups", key=signing_key
    )
    with pytest.raises(RestoreFailed) as raised:
        swap_with_writers_stopped(
            request,
            report,
            Reporter(quiet=True),
            move_in=_step(log, "move in"),
            start=_step(log, "start postgres"),
            discard=_step(log, "discard"),
        )
    assert log == ["stop writers", "start writers", "discard"]
    assert raised.value.code == "safety_backup_failed" and "nothing was restored" in raised.value.message
    assert request.safety_request.reason == "pre-restore to latest"
    assert report.safety_backup_id is None
