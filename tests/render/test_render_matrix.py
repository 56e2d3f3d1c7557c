"""Every profile x target renders and validates; output is deterministic and matches the goldens."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from renderkit import PROFILES, PROJECT, SECRETS, TARGETS, config_for

from schedgen_ops import __version__
from schedgen_ops.render import render_tree

GOLDEN = Path(__file__).parent / "golden"
# local/ is the runtime engineer's templates; secrets are fixed test values.
GOLDEN_SKIP = ("local/", "compose/secrets/", "kubernetes/secrets/")


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_and_target_renders_and_validates(
    validated, rendered, profile: str, target: str
) -> None:
    problems = validated(profile, target)
    assert problems == [], "\n".join(map(str, problems))
    out = rendered(profile, target)
    expected_dirs = {"compose", "kubernetes", "local"} if target == "all" else {target}
    present = {p.name for p in out.iterdir() if p.is_dir()}
    assert expected_dirs | {"systemd", "docs"} <= present
    assert (expected_dirs - {"local"}) & {"compose", "kubernetes"} <= present


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("profile", PROFILES)
def test_rendering_is_deterministic(tmp_path: Path, rendered, profile: str) -> None:
    again = tmp_path / "again"
    render_tree(config_for(profile), SECRETS, "all", again, project_dir=PROJECT)
    assert _tree(again) == _tree(rendered(profile, "all"))


def test_rerender_removes_files_a_profile_no_longer_produces(tmp_path: Path) -> None:
    render_tree(config_for("large"), SECRETS, "kubernetes", tmp_path, project_dir=PROJECT)
    assert (tmp_path / "kubernetes" / "minio.yaml").exists()
    render_tree(config_for("small"), SECRETS, "kubernetes", tmp_path, project_dir=PROJECT)
    assert not (tmp_path / "kubernetes" / "minio.yaml").exists()


def test_rendering_another_target_keeps_the_first(tmp_path: Path) -> None:
    from schedgen_ops.render import validate_tree

    render_tree(config_for("small"), SECRETS, "compose", tmp_path, project_dir=PROJECT)
    render_tree(config_for("small"), SECRETS, "kubernetes", tmp_path, project_dir=PROJECT)
    manifest = json.loads((tmp_path / "render.json").read_text())
    assert manifest["targets"] == ["compose", "kubernetes"]
    assert "compose/docker-compose.yml" in manifest["files"] and "kubernetes/api.yaml" in manifest["files"]
    assert validate_tree(tmp_path) == []


def test_files_schedgen_did_not_write_are_never_deleted(tmp_path: Path) -> None:
    from schedgen_ops.errors import SchedgenError

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "NOTES.md").write_text("mine")
    with pytest.raises(SchedgenError, match="holds files schedgen did not render"):
        render_tree(config_for("small"), SECRETS, "compose", tmp_path, project_dir=PROJECT)
    assert (tmp_path / "docs" / "NOTES.md").read_text() == "mine"


def test_files_are_stamped_with_the_toolkit_version(rendered) -> None:
    out = rendered("medium", "all")
    for rel in (
        "compose/docker-compose.yml",
        "kubernetes/api.yaml",
        "systemd/schedgen-backup.timer",
        "compose/redis/redis.conf",
        "docs/RUNBOOK.md",
    ):
        head = (out / rel).read_text().splitlines()[0]
        assert f"Rendered by schedgen {__version__} (profile medium)" in head, rel
    assert f'"toolkit_version": "{__version__}"' in (out / "render.json").read_text()


@pytest.mark.parametrize("profile", PROFILES)
def test_golden_snapshots(rendered, profile: str) -> None:
    """Every output change is a reviewed diff; update with SCHEDGEN_UPDATE_GOLDEN=1 pytest tests/render."""
    actual = {
        k: v
        for k, v in _tree(rendered(profile, "all")).items()
        if not k.startswith(GOLDEN_SKIP) and k != "render.json"
    }
    golden_dir = GOLDEN / profile
    if os.environ.get("SCHEDGEN_UPDATE_GOLDEN") == "1":
        shutil.rmtree(golden_dir, ignore_errors=True)
        for rel, data in actual.items():
            (golden_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            (golden_dir / rel).write_bytes(data)
    expected = _tree(golden_dir) if golden_dir.is_dir() else {}
    assert sorted(actual) == sorted(expected), "file set changed; review and update the goldens"
    changed = [rel for rel in actual if actual[rel] != expected[rel]]
    assert not changed, f"rendered output changed in {changed}; review, then SCHEDGEN_UPDATE_GOLDEN=1"
