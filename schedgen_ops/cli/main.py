"""The `schedgen` command: top-level options, command-group registration and error handling.

Command modules stay thin: parse arguments, call library code, print. Each group lives in its own
module and is registered below with a one-line description that `schedgen --help` lists.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer import _click as click  # typer >= 0.29 vendors click; its types are typer's own
from typer.core import TyperGroup

from schedgen_ops import __version__
from schedgen_ops.cli.metavars import name_values
from schedgen_ops.cli.state import OPTIONS
from schedgen_ops.errors import SchedgenError

app = typer.Typer(
    name="schedgen",
    help="Operations toolkit for the UP Schedule Generator: parse UP timetable PDFs, run the parsing "
    "service, render its configuration and operate it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"schedgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    project: Path = typer.Option(
        Path("."),
        "--project",
        "-P",
        help="Project directory (holds schedgen.yaml).",
        envvar="SCHEDGEN_PROJECT",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Operations toolkit for the UP Schedule Generator."""
    OPTIONS.project = project.resolve()
    OPTIONS.debug = debug


# Command groups: command name -> the module whose register(app) defines it. Modules are imported only
# when their command runs (or for --help), so `schedgen parse` does not pay for the service, locust or
# the PDF generator at start-up. tests/test_cli_main.py checks this table against the modules.
COMMANDS: dict[str, str] = {
    # timetables
    "parse": "parse",
    "samples": "samples",
    # project configuration
    "init": "init",
    "config": "config",
    "secrets": "secrets",
    "profiles": "profiles",
    "render": "render",
    # the service
    "serve": "serve",
    "db": "db",
    "apikeys": "apikeys",
    # runtimes
    "build": "build",
    "up": "up",
    "down": "up",
    "deploy": "deploy",
    "rollback": "deploy",
    "scale": "scale",
    "status": "status",
    "logs": "logs",
    "exec": "logs",
    "releases": "releases",
    "audit": "releases",
    # operations
    "health": "health",
    "backup": "backup",
    "restore": "restore",
    "loadtest": "loadtest",
    "checklist": "checklist",
}


def load_command(name: str) -> click.Command | None:
    """Import the module that defines command ``name`` and return its click command."""
    module_name = COMMANDS.get(name)
    if module_name is None:
        return None
    module = importlib.import_module(f"schedgen_ops.cli.{module_name}")
    holder = typer.Typer()
    module.register(holder)
    command = typer.main.get_group(holder).commands.get(name)
    return None if command is None else name_values(command)


class _LazyGroup(TyperGroup):
    """The root group: lists every command, imports a command's module only when it is used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        name_values(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or load_command(cmd_name)


app.info.cls = _LazyGroup


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; expected failures become a one-line ``error: ...`` and a non-zero exit code.

    Usage errors (exit 2), ``--help`` and ``typer.Exit`` are handled by typer's standalone mode.
    """
    args = sys.argv[1:] if argv is None else argv
    OPTIONS.debug = "--debug" in args
    try:
        app(args=args, prog_name="schedgen")
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except SchedgenError as exc:
        if OPTIONS.debug:
            traceback.print_exc()
        _err.print(f"error: {exc.one_line()}", markup=False)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
