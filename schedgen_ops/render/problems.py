"""What a validation check of a rendered tree reports: one `Problem` per broken rule, naming the file.

Its own module so every checker (validate.py, kube.py) can return it without importing the others.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    file: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"
