"""The project layout: every path under .schedgen/ has one home (schedgen_ops/layout.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from schedgen_ops.layout import SECRETS_FILE, STATE_DIR, ProjectLayout

SOURCE = Path(__file__).resolve().parents[1] / "schedgen_ops"


def test_paths_hang_off_the_state_directory() -> None:
    layout = ProjectLayout.of(Path("/srv/p"))
    assert layout.state == Path("/srv/p/.schedgen")
    assert layout.secrets == Path("/srv/p") / SECRETS_FILE
    assert layout.supervisor_sock == Path("/srv/p/.schedgen/run/supervisor.sock")
    assert layout.postgres_data == Path("/srv/p/.schedgen/data/postgres")
    for path in (layout.releases, layout.audit_log, layout.deploy_lock, layout.compose, layout.pgbackrest):
        assert path.parent == layout.state


def test_containing_finds_the_project_of_a_path_in_its_state() -> None:
    tree = Path("/srv/p/.schedgen/releases/20261202t1200z/tree")
    assert ProjectLayout.containing(tree) == ProjectLayout(Path("/srv/p"))
    assert ProjectLayout.containing(Path("/srv/p/.schedgen")) == ProjectLayout(Path("/srv/p"))
    assert ProjectLayout.containing(Path("/tmp/elsewhere/tree")) is None


def test_no_module_spells_the_state_directory_out() -> None:
    """Code builds these paths with ProjectLayout; ".schedgen" as a string constant appears only in
    layout.py (docstrings and messages that name a path for the user are prose, not code)."""
    offenders = []
    for path in SOURCE.rglob("*.py"):
        if path.name == "layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if text.strip("/") == STATE_DIR or text.startswith(STATE_DIR + "/"):
                offenders.append(f"{path.relative_to(SOURCE)}:{node.lineno}")
    assert not offenders, offenders
