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


def test_lazy_command_table_matches_the_modules():
    """Every module's register(app) defines exactly the commands COMMANDS maps to it."""
    import importlib
    import pkgutil

    import typer

    import schedgen_ops.cli as cli_pkg
    from schedgen_ops.cli.main import COMMANDS

    defined: dict[str, str] = {}
    for info in pkgutil.iter_modules(cli_pkg.__path__):
        module = importlib.import_module(f"schedgen_ops.cli.{info.name}")
        if not hasattr(module, "register"):
            continue
        holder = typer.Typer()
        module.register(holder)
        for name in typer.main.get_group(holder).commands:
            defined[name] = info.name
    assert defined == COMMANDS


def test_parse_does_not_import_the_other_command_groups():
    heavy = ("locust", "fastapi", "rq", "fpdf", "kubernetes_validate")
    code = (
        f"HEAVY = {heavy!r}; "
        "import sys; from schedgen_ops.cli.main import main; main(['parse', '--help']); "
        "heavy = [m for m in HEAVY if m in sys.modules]; print('heavy=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "heavy="
