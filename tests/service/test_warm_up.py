"""The worker's warm-up loads the parser before the first job, so no job pays for pdfminer's import.

The parse runs in the worker's sandbox child: warm-up must leave that child started with pdfminer and the
parser imported, and this process with the modules it uses per job (not just ``schedgen_ops.parsing``,
whose names load lazily). Checked in a fresh interpreter, so nothing the test runner imported counts.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = r"""
import json, sys
from schedgen_ops.service import tasks
from schedgen_ops.service.settings import ServiceSettings

heavy = ("pdfminer.pdfinterp", "schedgen_ops.parsing.api", "schedgen_ops.parsing.model",
         "schedgen_ops.parsing.errors")
before = [name for name in heavy if name in sys.modules]
settings = ServiceSettings()
tasks.warm_up(settings)
parent = [name for name in tasks.PARENT_MODULES if name in sys.modules]
with tasks.parser(settings).sandbox() as box:
    started = box.pid  # None unless warm-up started the child (status would start one itself)
    warm = box.status()
from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf  # loads pdfminer here: after

pdf = render_pdf(generate_timetable("lectures", seed=7, n_rows=6))
run = tasks._parse(settings, pdf, "warm.pdf")
with tasks.parser(settings).sandbox() as box:
    after_job = box.status()
report = {"started": started, "before": before, "parent": parent, "warm": warm}
print(json.dumps({**report, "after_job": after_job, "events": len(run.result().events)}))
"""


def test_warm_up_loads_the_parser_before_the_first_job() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    # Importing the task module loads none of the parser yet (the names are lazy): warm-up does it.
    assert "pdfminer.pdfinterp" not in report["before"]
    assert "schedgen_ops.parsing.api" not in report["before"]
    assert report["parent"] == [
        "schedgen_ops.parsing.model",
        "schedgen_ops.parsing.errors",
        "schedgen_ops.service.metrics",
    ]
    # The child that parses was started by warm-up, with pdfminer and the parser loaded before any job ...
    assert report["started"] is not None and report["started"] == report["warm"]["pid"]
    assert set(report["warm"]["modules"]) == {"pdfminer.pdfinterp", "schedgen_ops.parsing.api"}
    # ... and the first job runs in that same warm child, not a new one started for it.
    assert report["events"] > 0
    assert report["after_job"]["pid"] == report["warm"]["pid"]
