"""The `schedgen` command: top-level options, command-group registration and error handling.

Command modules stay thin: parse arguments, call library code, print. Each group lives in its own
module and is registered below with a one-line description that `schedgen --help` lists.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import typer
from rich.console import Console

from schedgen_ops import __version__
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


# Command groups (each module exposes register(app)).
from schedgen_ops.cli import parse as parse_cmd  # noqa: E402
from schedgen_ops.cli import samples as samples_cmd  # noqa: E402

parse_cmd.register(app)
samples_cmd.register(app)
from schedgen_ops.cli import apikeys as apikeys_cmd  # noqa: E402
from schedgen_ops.cli import db as db_cmd  # noqa: E402
from schedgen_ops.cli import serve as serve_cmd  # noqa: E402

serve_cmd.register(app)
db_cmd.register(app)
apikeys_cmd.register(app)
from schedgen_ops.cli import health as health_cmd  # noqa: E402

health_cmd.register(app)
from schedgen_ops.cli import backup as backup_cmd  # noqa: E402
from schedgen_ops.cli import restore as restore_cmd  # noqa: E402

backup_cmd.register(app)
restore_cmd.register(app)
from schedgen_ops.cli import loadtest as loadtest_cmd  # noqa: E402

loadtest_cmd.register(app)
from schedgen_ops.cli import checklist as checklist_cmd  # noqa: E402

checklist_cmd.register(app)

from schedgen_ops.cli import config as config_cmd  # noqa: E402
from schedgen_ops.cli import init as init_cmd  # noqa: E402
from schedgen_ops.cli import profiles as profiles_cmd  # noqa: E402
from schedgen_ops.cli import render as render_cmd  # noqa: E402
from schedgen_ops.cli import secrets as secrets_cmd  # noqa: E402

init_cmd.register(app)
config_cmd.register(app)
secrets_cmd.register(app)
profiles_cmd.register(app)
render_cmd.register(app)
from schedgen_ops.cli import deploy as deploy_cmd  # noqa: E402
from schedgen_ops.cli import logs as logs_cmd  # noqa: E402
from schedgen_ops.cli import releases as releases_cmd  # noqa: E402
from schedgen_ops.cli import scale as scale_cmd  # noqa: E402
from schedgen_ops.cli import status as status_cmd  # noqa: E402
from schedgen_ops.cli import up as up_cmd  # noqa: E402

up_cmd.register(app)
deploy_cmd.register(app)
scale_cmd.register(app)
status_cmd.register(app)
logs_cmd.register(app)
releases_cmd.register(app)


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
