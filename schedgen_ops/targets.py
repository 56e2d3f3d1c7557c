"""The deploy targets (runtimes), named once: every layer that takes ``--target`` checks it here."""

from __future__ import annotations

from schedgen_ops.errors import SchedgenError

#: The runtimes schedgen deploys to, the embedded default first.
TARGETS: tuple[str, ...] = ("local", "compose", "kubernetes")


def check_target(target: str, *, allow_all: bool = False) -> str:
    """``target`` when it names a runtime (or is "all" where that is allowed); a usage error otherwise."""
    if target in TARGETS or (allow_all and target == "all"):
        return target
    choices = ", ".join(TARGETS) + (" or all" if allow_all else "")
    raise SchedgenError(
        f"unknown target {target!r}", code="unknown_target", hint=f"use {choices}", exit_code=2
    )
