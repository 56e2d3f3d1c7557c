"""Pre-generate the PDFs simulated students upload: lectures, tests and exams of 1-4 pages.

Generated once per run, before the load starts, so PDF generation never competes with the service
for the CPU during the measurement. The locustfile then makes every upload byte-unique, so neither
a content cache nor deduplication can flatter the results.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.parsing.model import Kind

KINDS: tuple[Kind, ...] = ("lectures", "tests", "exams")
PAGES = (1, 2, 3, 4)


def build_pool(directory: Path, *, size: int = 12, seed: int = 0) -> list[Path]:
    """Write ``size`` synthetic UP timetables (every kind x 1-4 pages, cycling) into ``directory``."""
    try:
        from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf
    except ImportError as exc:  # pragma: no cover - the generator ships with the package
        raise SchedgenError(
            "the synthetic timetable generator is missing",
            code="broken_install",
            hint="reinstall schedgen-ops",
        ) from exc
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    combos = itertools.cycle(itertools.product(PAGES, KINDS))
    for index in range(size):
        pages, kind = next(combos)
        timetable = generate_timetable(kind, seed=seed + index, pages=pages)
        path = directory / f"{kind}-{pages}p-{index:03d}.pdf"
        path.write_bytes(render_pdf(timetable))
        paths.append(path)
    return paths
