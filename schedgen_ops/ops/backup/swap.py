"""The swap window of a restore: the restored database takes the live one's name, in one short step.

With the writers stopped: refuse new connections to the live database, end the sessions still on it,
rename it to ``previous`` and the restored one to its name. Either the swap happens or the live
database keeps its name and accepts connections again; only when undoing a half-done swap fails too
is the live database's state in doubt, and `SwapInDoubt` says exactly where it is.
"""

from __future__ import annotations

import contextlib
import time

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup import dbops
from schedgen_ops.ops.backup.targets import Target

#: How long the rename may wait for terminated sessions to go away.
RENAME_TIMEOUT_S = 15.0
_BUSY = "is being accessed by other users"


class SwapInDoubt(SchedgenError):
    """The swap failed half-way and could not be undone: the live name may be missing."""


def _rename_when_idle(target: Target, old: str, new: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        dbops.terminate_sessions(target, old)  # pg_terminate_backend only signals: retry until gone
        try:
            dbops.rename_database(target, old, new)
            return
        except SchedgenError as exc:
            if _BUSY not in exc.message or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def swap_in(
    target: Target, *, live: str, incoming: str, previous: str, timeout_s: float = RENAME_TIMEOUT_S
) -> None:
    """Rename ``live`` -> ``previous`` and ``incoming`` -> ``live``; undo on failure."""
    holders = dbops.unendable_sessions(target, live)
    if holders:  # they would hold the rename until the timeout
        raise SchedgenError(
            f"sessions of {', '.join(holders)} on {live} cannot be ended by this role, and the rename needs "
            "none left",
            code="restore_sessions_busy",
            hint="GRANT pg_signal_backend to the restoring role, or end those sessions, then restore again",
        )
    dbops.allow_connections(target, live, False)
    try:
        _rename_when_idle(target, live, previous, timeout_s)
    except SchedgenError:
        with contextlib.suppress(SchedgenError):
            dbops.allow_connections(target, live, True)
        raise
    try:
        dbops.rename_database(target, incoming, live)
    except SchedgenError as exc:
        try:
            dbops.rename_database(target, previous, live)
            dbops.allow_connections(target, live, True)
        except SchedgenError as undo:
            raise SwapInDoubt(
                f"the swap failed ({exc.message}) and undoing it failed too ({undo.message}): the live "
                f"database is now named {previous}",
                code="restore_swap_in_doubt",
                hint=f'rename it back: ALTER DATABASE "{previous}" RENAME TO "{live}"; ALTER DATABASE '
                f'"{live}" WITH ALLOW_CONNECTIONS true',
            ) from exc
        raise
    with contextlib.suppress(SchedgenError):  # kept for inspection and as the way back
        dbops.allow_connections(target, previous, True)
