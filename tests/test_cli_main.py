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


def _every_command_path() -> list[list[str]]:
    """[name], [group, sub], ... for every command the CLI can load."""
    from schedgen_ops.cli.main import COMMANDS, load_command

    paths: list[list[str]] = []

    def walk(prefix: list[str], command) -> None:
        paths.append(prefix)
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk([*prefix, name], sub)

    for name in COMMANDS:
        walk([name], load_command(name))
    return paths


def test_help_names_values_instead_of_python_types(capsys, monkeypatch):
    """`--help` says FILE, DIR, URL, N ... and nothing for flags, never typer's <str>/<bool>/<path>."""
    import re

    monkeypatch.setenv("COLUMNS", "80")
    paths = [[], *_every_command_path()]
    assert len(paths) > 40
    raw = re.compile(r"<(bool|str|path|int|float|file|dir|list\[[a-z]+\])>")
    for path in paths:
        assert main([*path, "--help"]) == 0, path
        shown = capsys.readouterr().out
        assert not raw.findall(shown), (path, raw.findall(shown), shown)
    assert main(["restore", "--help"]) == 0
    shown = capsys.readouterr().out
    assert "[BACKUP_ID]" in shown and "TIME|latest" in shown and re.search(r"--database-url\s+URL", shown)
    assert re.search(r"--yes\s+-y\s+Do not ask", shown), shown  # a flag takes no value: no name shown


def _eaten_by_markup(text: str) -> list[str]:
    """The ``[...]`` runs Rich would take for a tag that is not a style (so the text disappears)."""
    import re

    from rich.errors import StyleSyntaxError
    from rich.style import Style

    eaten = []
    for match in re.finditer(r"(?<!\\)\[([^\[\]]+)\]", text):
        tag = match.group(1)
        if not re.match(r"[a-z#/@]", tag) or tag.startswith("/"):
            continue  # Rich leaves it as text, or it closes a style
        try:
            Style.parse(tag)
        except StyleSyntaxError:
            eaten.append(match.group(0))
    return eaten


def test_no_help_text_is_eaten_as_rich_markup():
    """typer renders help with Rich markup: a bare ``[default: x]`` is taken for a tag and vanishes."""
    from schedgen_ops.cli.main import COMMANDS, load_command

    def texts(command, path):
        yield path, command.help or ""
        for param in command.params:
            yield f"{path} {param.name}", getattr(param, "help", None) or ""
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from texts(sub, f"{path} {name}")

    found = [
        (where, _eaten_by_markup(text))
        for name in COMMANDS
        for where, text in texts(load_command(name), name)
    ]
    assert len(found) > 200
    assert not [hit for hit in found if hit[1]], [hit for hit in found if hit[1]]
    assert _eaten_by_markup("Report directory [default: x]. [bold]b[/bold] \\[not a tag]") == ["[default: x]"]
