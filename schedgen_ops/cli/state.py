"""Global CLI options shared by every command group (set once by the top-level callback)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class GlobalOptions:
    """Options given before the command name: ``schedgen --project DIR --debug <command>``."""

    project: Path = field(default_factory=Path.cwd)
    debug: bool = False


OPTIONS = GlobalOptions()
