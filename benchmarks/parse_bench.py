"""Parser benchmark: warm parse time per real UP PDF and peak RSS of a `schedgen parse` process.

Every figure is printed next to a baseline measured in the same run on the same machine:
  * time: plain pdfplumber (open once, page text + extract_tables on every page), the usual way to
    read these files, against `schedgen_ops.parsing.parse_pdf`;
  * RSS: a Python process doing that pdfplumber baseline on the same files, against `schedgen parse`.
The previous implementation's figures quoted in the issue (pdfplumber + pandas, file opened twice:
0.105 / 0.070 / 0.026 s warm, 91-103 MB) are printed for reference, not re-measured (pandas is not a
dependency).

    python benchmarks/parse_bench.py [--repeat 30] [--json]

Times are medians of CPU time with our parser and the baseline run alternately (see
`interleaved_medians`); wall-clock medians are in the JSON output.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pdfplumber

from schedgen_ops.parsing import parse_pdf
from schedgen_ops.parsing.synthetic import generate_timetable, render_pdf

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SCHEDGEN_SHARED_DIR", REPO.parent / "shared")) / "fixtures" / "up-pdfs"
REAL = ("UP_MOD_XLS.pdf", "UP_TST_PDF.pdf", "UP_EXAM_SS.pdf")
PREVIOUS_S = {"UP_MOD_XLS.pdf": 0.105, "UP_TST_PDF.pdf": 0.070, "UP_EXAM_SS.pdf": 0.026}
TARGET_SPEEDUP, TARGET_RSS_MB = 2.0, 70.0

PARSE_ALONE = """
import sys, typer
from schedgen_ops.cli import parse
app = typer.Typer()
app.callback()(lambda: None)
parse.register(app)
app(args=sys.argv[1:])
"""

BASELINE_SCRIPT = """
import io, sys, pdfplumber
for path in sys.argv[1:]:
    with pdfplumber.open(path) as pdf:
        for page in pdf.pages:
            page.extract_text()
            page.extract_tables()
"""


def baseline_parse(data: bytes) -> None:
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for page in pdf.pages:
            page.extract_text()
            page.extract_tables()


def interleaved_medians(
    ours: Callable[[], object], base: Callable[[], object], repeat: int
) -> tuple[float, float, float, float]:
    """Median CPU and wall time of each function, runs alternating so both see the same machine load.

    CPU time (process_time) is the headline figure: the build machine's 2 cores are shared, and
    parsing is single-threaded, so on an idle machine CPU time equals wall time.
    """
    for fn in (ours, base, ours, base):  # warm: imports, font caches
        fn()
    cpu: dict[int, list[float]] = {0: [], 1: []}
    wall: dict[int, list[float]] = {0: [], 1: []}
    for _ in range(repeat):
        for i, fn in enumerate((ours, base)):
            c, w = time.process_time(), time.perf_counter()
            fn()
            cpu[i].append(time.process_time() - c)
            wall[i].append(time.perf_counter() - w)
    med = statistics.median
    return med(cpu[0]), med(cpu[1]), med(wall[0]), med(wall[1])


# A small trampoline process runs each measured command: a child forked straight from this (large)
# benchmark process would inherit its RSS in ru_maxrss before exec.
_TRAMPOLINE = (
    "import os, subprocess, sys\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(p.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


def peak_rss_mb(argv: list[str]) -> float:
    """Peak RSS in MB of one process running ``argv`` (ru_maxrss is in KiB on Linux)."""
    res = subprocess.run([sys.executable, "-c", _TRAMPOLINE, *argv], capture_output=True, text=True)
    code, kib = res.stdout.split()
    if res.returncode != 0 or code != "0":
        raise SystemExit(f"{argv[:4]}... failed: {res.stderr}")
    return int(kib) / 1024


def schedgen_argv() -> list[str]:
    exe = shutil.which("schedgen")
    return [exe] if exe else [sys.executable, "-m", "schedgen_ops.cli.main"]


def run(repeat: int) -> dict[str, object]:
    files = [SHARED / name for name in REAL]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise SystemExit(f"missing real PDFs: {', '.join(missing)} (set SCHEDGEN_SHARED_DIR)")
    timing = []
    for path in files:
        data = path.read_bytes()
        ours, base, ours_wall, base_wall = interleaved_medians(
            lambda data=data: parse_pdf(data), lambda data=data: baseline_parse(data), repeat
        )
        timing.append(
            {
                "file": path.name,
                "schedgen_s": round(ours, 4),
                "pdfplumber_baseline_s": round(base, 4),
                "speedup_vs_baseline": round(base / ours, 2),
                "schedgen_wall_s": round(ours_wall, 4),
                "pdfplumber_baseline_wall_s": round(base_wall, 4),
                "previous_impl_s": PREVIOUS_S[path.name],
                "speedup_vs_previous": round(PREVIOUS_S[path.name] / ours, 2),
            }
        )
    for kind, pages in (("lectures", 10), ("tests", 50)):
        data = render_pdf(generate_timetable(kind, seed=1, pages=pages))
        ours, base, ours_wall, base_wall = interleaved_medians(
            lambda data=data: parse_pdf(data), lambda data=data: baseline_parse(data), max(3, repeat // 6)
        )
        timing.append(
            {
                "file": f"synthetic {kind}, {pages} pages",
                "schedgen_s": round(ours, 4),
                "pdfplumber_baseline_s": round(base, 4),
                "speedup_vs_baseline": round(base / ours, 2),
                "schedgen_wall_s": round(ours_wall, 4),
                "pdfplumber_baseline_wall_s": round(base_wall, 4),
            }
        )

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "all.ics"
        paths = [str(f) for f in files]
        rss = {
            "schedgen_parse_ics_mb": peak_rss_mb(
                [*schedgen_argv(), "parse", *paths, "-f", "ics", "--semester", "S2", "-o", str(out)]
            ),
            "schedgen_parse_json_mb": peak_rss_mb([*schedgen_argv(), "parse", *paths, "-f", "json"]),
            "cli_import_only_mb": peak_rss_mb([sys.executable, "-c", "import schedgen_ops.cli.main"]),
            # The parse command registered alone (what a lazily-loading CLI would cost).
            "parse_command_alone_ics_mb": peak_rss_mb(
                [
                    sys.executable,
                    "-c",
                    PARSE_ALONE,
                    "parse",
                    *paths,
                    "-f",
                    "ics",
                    "--semester",
                    "S2",
                    "-o",
                    str(out),
                ]
            ),
            "parser_alone_mb": peak_rss_mb(
                [
                    sys.executable,
                    "-c",
                    "import sys; from schedgen_ops.parsing import parse_pdf; from pathlib import Path; "
                    "[parse_pdf(Path(p)) for p in sys.argv[1:]]",
                    *paths,
                ]
            ),
            "pdfplumber_baseline_mb": peak_rss_mb([sys.executable, "-c", BASELINE_SCRIPT, *paths]),
            "python_empty_mb": peak_rss_mb([sys.executable, "-c", "pass"]),
        }
    rss = {k: round(v, 1) for k, v in rss.items()}
    return {
        "repeat": repeat,
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "timing": timing,
        "rss": rss,
        "targets": {"speedup_vs_previous": TARGET_SPEEDUP, "rss_mb": TARGET_RSS_MB},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per file (median reported)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    result = run(args.repeat)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"python {result['python']}, {result['cpus']} CPUs, median CPU time of {args.repeat} warm runs\n")
    print(f"{'file':34} {'schedgen':>9} {'pdfplumber':>10} {'ratio':>6} {'previous':>9} {'ratio':>6}")
    for row in result["timing"]:  # type: ignore[attr-defined]
        prev = f"{row['previous_impl_s']:.3f}s" if "previous_impl_s" in row else "-"
        prev_ratio = f"{row['speedup_vs_previous']:.1f}x" if "speedup_vs_previous" in row else "-"
        print(
            f"{row['file']:34} {row['schedgen_s']:>8.4f}s {row['pdfplumber_baseline_s']:>9.4f}s "
            f"{row['speedup_vs_baseline']:>5.1f}x {prev:>9} {prev_ratio:>6}"
        )
    print("\npeak RSS (MB)")
    for key, value in result["rss"].items():  # type: ignore[attr-defined]
        print(f"  {key:28} {value:6.1f}")
    rss = result["rss"]
    print(
        f"\nschedgen parse vs pdfplumber baseline process: "
        f"{rss['schedgen_parse_ics_mb'] / rss['pdfplumber_baseline_mb']:.2f}x"  # type: ignore[index]
    )


if __name__ == "__main__":
    main()
