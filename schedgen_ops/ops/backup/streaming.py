"""Run external commands with their output streamed to (or their input from) files.

Pipefail semantics: every process's exit code is checked and a failure raises with the tail of its
stderr; output is written and hashed chunk by chunk, never buffered whole and never masked by a
later stage succeeding (the old gzip pipe reported success for failed dumps).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from schedgen_ops.errors import SchedgenError

CHUNK = 1024 * 1024
_STDERR_TAIL = 800

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class FileDigest:
    """Size and sha256 of a file as written or read."""

    size: int
    sha256: str


def _stderr_tail(handle: IO[bytes]) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace").strip()[-_STDERR_TAIL:]


def _env(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def _fail(argv: Sequence[str], code: int, stderr: str, what: str) -> SchedgenError:
    return SchedgenError(
        f"{what} failed: {Path(argv[0]).name} exited with code {code}: {stderr or '(no stderr)'}",
        code="command_failed",
        hint="see the message above; nothing was marked complete",
    )


def stream_to_file(
    argv: Sequence[str],
    dest: Path,
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> FileDigest:
    """Run ``argv`` writing its stdout to ``dest`` while hashing it; raise unless it exits 0."""
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as err, open(dest, "wb") as out:
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err, env=_env(env))
        except FileNotFoundError as exc:
            raise SchedgenError(f"{what} failed: {argv[0]} not found", code="missing_binary") from exc
        assert proc.stdout is not None
        with proc:
            while chunk := proc.stdout.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress:
                    progress(len(chunk))
        if proc.returncode != 0:
            raise _fail(argv, proc.returncode, _stderr_tail(err), what)
        out.flush()
        os.fsync(out.fileno())
    return FileDigest(size, digest.hexdigest())


def stream_from_file(
    argv: Sequence[str],
    source: Path,
    *,
    what: str,
    env: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
) -> str:
    """Run ``argv`` with ``source`` streamed to its stdin; return its stdout; raise unless it exits 0."""
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out, open(source, "rb") as src:
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=out, stderr=err, env=_env(env))
        except FileNotFoundError as exc:
            raise SchedgenError(f"{what} failed: {argv[0]} not found", code="missing_binary") from exc
        assert proc.stdin is not None
        try:
            while chunk := src.read(CHUNK):
                proc.stdin.write(chunk)
                if progress:
                    progress(len(chunk))
        except BrokenPipeError:
            pass  # the process exited early; its exit code below says why
        finally:
            proc.stdin.close()
        code = proc.wait()
        if code != 0:
            raise _fail(argv, code, _stderr_tail(err), what)
        out.seek(0)
        return out.read().decode(errors="replace")


def run_checked(
    argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None, timeout: float | None = None
) -> str:
    """Run ``argv`` to completion; return stdout; raise with stderr unless it exits 0."""
    try:
        out = subprocess.run(list(argv), capture_output=True, env=_env(env), check=False, timeout=timeout)
    except FileNotFoundError as exc:
        raise SchedgenError(f"{what} failed: {argv[0]} not found", code="missing_binary") from exc
    if out.returncode != 0:
        stderr = out.stderr.decode(errors="replace").strip()[-_STDERR_TAIL:]
        raise _fail(argv, out.returncode, stderr, what)
    return out.stdout.decode(errors="replace")


@contextmanager
def stream_lines(
    argv: Sequence[str], *, what: str, env: Mapping[str, str] | None = None
) -> Iterator[Iterator[bytes]]:
    """Iterate over ``argv``'s stdout lines; on exit, raise unless the process exited 0.

    The caller must consume the iterator fully: stopping early kills the process and counts as failure.
    """
    with tempfile.TemporaryFile() as err:
        try:
            proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err, env=_env(env))
        except FileNotFoundError as exc:
            raise SchedgenError(f"{what} failed: {argv[0]} not found", code="missing_binary") from exc
        assert proc.stdout is not None
        completed = False
        try:
            yield iter(proc.stdout)
            completed = True
        finally:
            if not completed:
                proc.kill()
            proc.stdout.close()
            code = proc.wait()
        if code != 0:
            raise _fail(argv, code, _stderr_tail(err), what)


def file_digest(path: Path, progress: ProgressFn | None = None) -> FileDigest:
    """sha256 and size of a file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if progress:
                progress(len(chunk))
    return FileDigest(size, digest.hexdigest())
