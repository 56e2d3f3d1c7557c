"""The top-level CLI: version, help, and the one-line error contract."""

from __future__ import annotations

import subprocess
import sys

from schedgen_ops import __version__
from schedgen_ops.cli.main import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"schedgen {__version__}"


def test_console_script_runs_as_a_process():
    out = subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert __version__ in out.stdout


def test_unknown_command_is_a_usage_error(capsys):
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err
