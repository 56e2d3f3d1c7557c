"""Progress: bars on a terminal, one plain line per step elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from schedgen_ops.ops.backup.progress import Reporter, human_bytes


def test_a_terminal_gets_progress_bars():
    out = io.StringIO()
    reporter = Reporter(Console(file=out, force_terminal=True, width=100, color_system=None))
    with reporter.step("postgres: pg_dump -Fc", total=4096) as advance:
        advance(2048)
        advance(2048)
    text = out.getvalue()
    assert "postgres: pg_dump -Fc" in text and "━" in text and "4.1/4.1 kB" in text


def test_ci_logs_get_one_plain_line_per_step():
    out = io.StringIO()
    reporter = Reporter(Console(file=out, force_terminal=False, width=100))
    with reporter.step("redis: snapshot") as advance:
        advance(3 * 1024 * 1024)
    (line,) = out.getvalue().splitlines()
    assert line.startswith("redis: snapshot: 3.0 MB in ") and line.endswith("s")
    assert "\x1b" not in out.getvalue()


def test_quiet_reports_nothing():
    out = io.StringIO()
    reporter = Reporter(Console(file=out), quiet=True)
    with reporter.step("x") as advance:
        advance(10)
    reporter.note("hello")
    assert out.getvalue() == ""
    assert human_bytes(512) == "512 B" and human_bytes(1536) == "1.5 KB"
