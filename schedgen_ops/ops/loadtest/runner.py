"""Run locust as a subprocess (never imported here: it monkey-patches the standard library).

`locust_argv` is pure (tested against literal argv); `run_locust` starts it with the run's config in
the environment, bounds it with a hard timeout so nothing can hang a CI job, and keeps its output in
the report directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.resources import data_dir

CONFIG_ENV = "SCHEDGEN_LOADTEST_CONFIG"
USER_CLASSES = {"upload": "UploadUser", "status": "StatusUser", "health": "HealthUser"}
STOP_TIMEOUT_S = 5


def locustfile() -> Path:
    """The shipped locustfile (in the wheel's data or the source checkout)."""
    path = data_dir("loadtests") / "locustfile.py"
    if not path.is_file():
        raise SchedgenError(
            f"locustfile missing: {path}", code="broken_install", hint="reinstall schedgen-ops"
        )
    return path


def locust_argv(
    *, python: str, locustfile: Path, host: str, report_dir: Path, mix: dict[str, int]
) -> list[str]:
    """``python -m locust`` headless with CSV and HTML reports; the shape in the locustfile drives users."""
    classes = [USER_CLASSES[kind] for kind in sorted(mix) if mix[kind] > 0]
    return [
        python,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "--host",
        host,
        "--csv",
        str(report_dir / "locust"),
        "--html",
        str(report_dir / "locust.html"),
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--exit-code-on-error",
        "0",
        "--loglevel",
        "WARNING",
        "--logfile",
        str(report_dir / "locust.log"),
        "--only-summary",
        *classes,
    ]


@dataclass
class LocustResult:
    returncode: int
    duration_s: float
    timed_out: bool
    output_tail: str


def run_locust(
    argv: list[str],
    *,
    config_path: Path,
    output_path: Path,
    timeout_s: float,
    on_tick: Callable[[float], None] | None = None,
) -> LocustResult:
    """Run ``argv`` to completion (killed after ``timeout_s``), calling ``on_tick(elapsed)`` every second."""
    env = {**os.environ, CONFIG_ENV: str(config_path), "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with output_path.open("wb") as out:
        try:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        except OSError as exc:
            raise SchedgenError(
                f"cannot start locust: {exc}", code="locust_missing", hint="pip install locust"
            ) from exc
        timed_out = False
        try:
            while proc.poll() is None:
                elapsed = time.monotonic() - started
                if elapsed > timeout_s:
                    timed_out = True
                    _terminate(proc)
                    break
                if on_tick is not None:
                    on_tick(elapsed)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)
        except BaseException:
            _terminate(proc)
            raise
    tail = output_path.read_text(errors="replace")[-3000:]
    return LocustResult(
        proc.returncode if proc.returncode is not None else -1, time.monotonic() - started, timed_out, tail
    )


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the locust process group, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=STOP_TIMEOUT_S + 5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def python_executable() -> str:
    return sys.executable
