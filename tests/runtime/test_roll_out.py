"""`up` and `deploy` share `roll_out`; what they still differ in is pinned here (local dry runs)."""

from __future__ import annotations

from pathlib import Path

from schedgen_ops.config.project import init_project
from schedgen_ops.runtime import operations
from schedgen_ops.runtime.audit import AuditLog
from schedgen_ops.runtime.operations import Ops


def _ops(project: Path, echoed: list[str]) -> Ops:
    return Ops(project, dry_run=True, echo=echoed.append)


def test_deploy_dry_run_announces_its_plan_and_audits_it(tmp_path: Path) -> None:
    init_project(tmp_path, profile="small")
    echoed: list[str] = []
    outcome = operations.deploy(_ops(tmp_path, echoed), target="local")
    assert outcome.release is None and outcome.previous is None and outcome.gate is None
    assert echoed[0] == "plan: deploy profile small to local (current release: none)"
    assert any("health gate: /readyz on every api replica" in line and "canary" in line for line in echoed)
    verbs = [e for e in AuditLog.for_project(tmp_path).tail() if e["action"] == "deploy"]
    assert [(e["result"], e["target"]) for e in verbs] == [("dry-run", "local")]
    assert not (tmp_path / ".schedgen" / "staging").exists()


def test_up_dry_run_plans_a_cold_start_quietly(tmp_path: Path) -> None:
    init_project(tmp_path, profile="small")
    echoed: list[str] = []
    outcome = operations.up(_ops(tmp_path, echoed))
    assert outcome.release is None and not outcome.unchanged
    assert not any(line.startswith(("plan:", "release ")) for line in echoed)
    assert any("start supervisord on" in line for line in echoed)
    gate_lines = [line for line in echoed if "health gate:" in line]
    assert gate_lines and not any("canary" in line for line in gate_lines)  # up gates without a canary
    audit = AuditLog.for_project(tmp_path).tail()
    assert [e for e in audit if e["action"] == "up"] == []  # only the runner's step entries
    assert {e["action"] for e in audit} == {"step"}
    assert not (tmp_path / ".schedgen" / "staging").exists()
