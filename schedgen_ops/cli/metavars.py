"""Names for values in `--help`: FILE, DIR, URL, N, SECONDS, ... instead of typer's ``<str>``/``<path>``.

Typer labels every value with its Python type (``<str>``, ``<path>``, ``<int>``) and every flag with
``<bool>``, which tells a reader nothing they can type. `name_values` runs once on each command the CLI
loads (cli/main.py) and gives each parameter without an explicit ``metavar`` a name from its type and
its own name, the way man pages do; flags get none. An explicit ``metavar=`` in a command always wins.
"""

from __future__ import annotations

from typing import Any, get_args

from typer import _click as click  # typer >= 0.29 vendors click; its types are typer's own

_DIR_WORDS = ("dir", "directory", "project", "root", "tree")
_SECONDS_WORDS = ("timeout", "seconds", "interval", "duration", "every", "wait", "grace", "after")


def name_values(command: click.Command) -> click.Command:
    """Name the values of ``command``'s parameters (and its subcommands', for a group); returns it."""
    for param in command.params:
        _name(param)
    made = command.get_help_option  # --help is made per context, after this runs

    def help_option(ctx: Any) -> Any:
        option = made(ctx)
        if option is not None:
            _name(option)
        return option

    command.get_help_option = help_option  # type: ignore[method-assign]
    for sub in (getattr(command, "commands", None) or {}).values():  # a group's subcommands
        name_values(sub)
    return command


def value_name(param: Any) -> str:
    """What a user types for ``param``: DIR, FILE, PATH, URL, N, SECONDS, NUMBER, or its own name."""
    name = (param.name or "value").lower()
    words = name.split("_")
    desc = param.type_descriptor
    kind = _element(desc.annotation)
    text = (getattr(param, "help", None) or "").lower()
    minutes = "minute" in text
    seconds = not minutes and (
        words[-1] == "s" or "second" in text or any(w in _SECONDS_WORDS for w in words)
    )
    if desc.is_path:
        path = desc.path_type
        if path in ("file", "dir"):
            return path.upper()
        return "DIR" if any(w in _DIR_WORDS for w in words) else "FILE" if "file" in words else "PATH"
    if kind is int and words[-1] == "port":
        return "PORT"
    if kind in (int, float):
        return "MINUTES" if minutes else "SECONDS" if seconds else "N" if kind is int else "NUMBER"
    if words[-1] == "url" or "webhook" in words:
        return "URL"
    if name in ("overrides", "set"):
        return "KEY=VALUE"
    return name.upper()


def _element(annotation: Any) -> Any:
    """``X`` of ``X | None``, ``Optional[X]`` and ``list[X]``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    return _element(args[0]) if len(args) == 1 else annotation


def _name(param: Any) -> None:
    desc = getattr(param, "type_descriptor", None)
    if desc is None or desc.is_choice:
        return  # not a typer parameter, or typer lists the choices themselves: a|b|c
    if param.param_type_name == "option":
        if param.metavar is None:
            param.metavar = "" if param.is_flag or param.count else value_name(param)
        return
    if param.metavar is None:
        param.metavar = value_name(param)
    # An argument's name column already shows its metavar: no second type column.
    param.display_type_rich = _no_type


def _no_type(ctx: Any) -> None:
    return None
