"""Production-readiness checklist: checks as data, evaluated against the rendered tree and the live stack.

ctx = Context(project, tree=RenderedTree(out_dir), profile="medium")
report = evaluate(ctx, ignore=config.checklist.get("ignore", {}), acks=load_acks(project))
report.exit_code   # 0 pass, 3 a danger check failed, 4 score below min_score
"""

from __future__ import annotations

from schedgen_ops.ops.readiness.acks import load_acks, record_ack
from schedgen_ops.ops.readiness.context import Context, LiveTarget
from schedgen_ops.ops.readiness.evaluate import Report, evaluate, score
from schedgen_ops.ops.readiness.registry import all_checks
from schedgen_ops.ops.readiness.tree import RenderedTree

__all__ = [
    "Context",
    "LiveTarget",
    "RenderedTree",
    "Report",
    "all_checks",
    "evaluate",
    "load_acks",
    "record_ack",
    "score",
]
