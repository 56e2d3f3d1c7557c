"""Read the local runtime's supervisord.conf: each program's command, environment and stop wait."""

from __future__ import annotations

import re
import shlex
from configparser import RawConfigParser
from dataclasses import dataclass

from schedgen_ops.ops.readiness.tree import RenderedTree

SUPERVISORD_CONF = "local/supervisord.conf"
_ENV_ITEM = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)=(?:"((?:[^"\\]|\\.)*)"|([^,]*))')


@dataclass(frozen=True)
class Program:
    name: str
    argv: list[str]
    env: dict[str, str]
    stopwaitsecs: int

    @property
    def where(self) -> str:
        return f"[program:{self.name}]"


def parse_environment(value: str) -> dict[str, str]:
    """supervisord's ``environment=KEY="value",KEY2=value2`` syntax."""
    return {
        m.group(1): m.group(2) if m.group(2) is not None else m.group(3) for m in _ENV_ITEM.finditer(value)
    }


def programs(tree: RenderedTree) -> list[Program]:
    """Every [program:x] of local/supervisord.conf ([] when the tree has no local runtime output)."""
    if not tree.exists(SUPERVISORD_CONF):
        return []
    parser = RawConfigParser(strict=False, interpolation=None)
    parser.read_string(tree.text(SUPERVISORD_CONF))
    out = []
    for section in parser.sections():
        if not section.startswith("program:"):
            continue
        items = dict(parser.items(section))
        try:
            argv = shlex.split(items.get("command", ""))
        except ValueError:
            argv = items.get("command", "").split()
        wait = items.get("stopwaitsecs", "10")
        out.append(
            Program(
                name=section.removeprefix("program:"),
                argv=argv,
                env=parse_environment(items.get("environment", "")),
                stopwaitsecs=int(wait) if wait.isdigit() else 10,
            )
        )
    return out
