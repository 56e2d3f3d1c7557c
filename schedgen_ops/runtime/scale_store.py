"""The one reader and writer of ``.schedgen/scale.json``: the replica counts set with `schedgen scale`.

They outlive a deploy (a new release starts with the counts the operator chose, not the rendered
defaults) and are forgotten with the data (`down --volumes`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from pathlib import Path

FILENAME = "scale.json"


class ScaleStore:
    """Desired replicas per service, in ``<state>/scale.json`` (``{"api": 2, "pdf-worker": 3}``)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILENAME

    def read(self) -> dict[str, int]:
        """The saved counts; none when the file is missing or unreadable (the defaults then apply)."""
        # missing, not JSON, or not a map of counts
        with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return {service: int(count) for service, count in data.items()}
        return {}

    def save(self, counts: Mapping[str, int]) -> None:
        """Merge ``counts`` into the saved ones (other services keep theirs)."""
        merged = {**self.read(), **counts}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    def clear(self) -> None:
        """Forget every saved count."""
        self.path.unlink(missing_ok=True)
