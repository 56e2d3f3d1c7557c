"""The one place external commands run: echoed, skipped under ``--dry-run``, recorded in the audit log.

Runtimes build argv with `schedgen_ops.runtime.argv` and hand it here; nothing else in the runtime
package calls `subprocess` for an operation that changes a stack.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.audit import AuditLog


@dataclass
class CommandResult:
    """What one command did (``dry_run`` results have returncode 0 and no output)."""

    argv: list[str]
    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration_s: float = 0.0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def format_argv(argv: Sequence[str]) -> str:
    """Shell-quoted, copy-pasteable form of a command."""
    return shlex.join(argv)


@dataclass
class Runner:
    """Runs argv lists; ``echo`` receives each command line before it runs (or instead, when dry)."""

    dry_run: bool = False
    echo: Callable[[str], None] | None = None
    audit: AuditLog | None = None
    env: Mapping[str, str] | None = None
    planned: list[list[str]] = field(default_factory=list)

    def _announce(self, argv: Sequence[str]) -> None:
        self.planned.append(list(argv))
        if self.echo is not None:
            self.echo(("(dry run) " if self.dry_run else "") + "$ " + format_argv(argv))

    def _record(self, result: CommandResult) -> None:
        if self.audit is None:
            return
        outcome = "dry-run" if result.dry_run else ("ok" if result.ok else f"exit {result.returncode}")
        self.audit.append("command", result=outcome, duration_s=result.duration_s, argv=result.argv)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        capture: bool = True,
        timeout_s: float | None = None,
        read_only: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run one command. ``read_only`` commands (ps, get, top) run even under ``--dry-run``.

        ``check`` turns a non-zero exit into a `SchedgenError` naming the command and its stderr.
        """
        argv = list(argv)
        if self.dry_run and not read_only:
            self._announce(argv)
            result = CommandResult(argv, 0, dry_run=True)
            self._record(result)
            return result
        if not read_only:
            self._announce(argv)
        if shutil.which(argv[0]) is None:
            raise SchedgenError(
                f"{argv[0]} is not installed or not on PATH",
                code="missing_binary",
                hint=f"install {argv[0]} or pick another --target",
            )
        started = time.monotonic()
        try:
            proc = subprocess.run(
                argv,
                capture_output=capture,
                text=True,
                timeout=timeout_s,
                env=dict(env) if env is not None else (None if self.env is None else dict(self.env)),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            result = CommandResult(argv, 124, duration_s=time.monotonic() - started)
            if not read_only:
                self._record(result)
            raise SchedgenError(
                f"{format_argv(argv)} did not finish within {exc.timeout:g}s", code="command_timeout"
            ) from exc
        result = CommandResult(
            argv,
            proc.returncode,
            proc.stdout or "",
            proc.stderr or "",
            time.monotonic() - started,
        )
        if not read_only:
            self._record(result)
        if check and not result.ok:
            detail = (result.stderr or result.stdout).strip().splitlines()
            last = detail[-1] if detail else "no output"
            raise SchedgenError(
                f"{format_argv(argv)} failed with exit {result.returncode}: {last}", code="command_failed"
            )
        return result

    def note(self, action: str) -> None:
        """Echo (and audit) a step that is not an external command, e.g. an XML-RPC call to supervisord."""
        if self.echo is not None:
            self.echo(("(dry run) " if self.dry_run else "") + "- " + action)
        if self.audit is not None:
            self.audit.append("step", result="dry-run" if self.dry_run else "ok", step=action)

    def stream(self, argv: Sequence[str]) -> Iterator[str]:
        """Yield a long-running command's output lines as they come (``logs -f``); read-only."""
        argv = list(argv)
        if shutil.which(argv[0]) is None:
            raise SchedgenError(f"{argv[0]} is not installed or not on PATH", code="missing_binary")
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=None if self.env is None else dict(self.env),
        )
        assert proc.stdout is not None
        try:
            yield from (line.rstrip("\n") for line in proc.stdout)
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait()
