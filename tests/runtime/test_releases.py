"""Release records: copies of rendered trees, provenance, live/previous bookkeeping, pruning."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from schedgen_ops import __version__
from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.releases import ReleaseStore, images_in_tree, tree_digest


def _tree(root: Path, marker: str) -> Path:
    (root / "compose").mkdir(parents=True)
    (root / "compose" / "docker-compose.yml").write_text(
        "services:\n  api:\n    image: schedgen/service:0.1.0\n  redis:\n    image: redis:7.4.1-alpine\n"
        f"x-marker: {marker}\n"
    )
    (root / "kubernetes").mkdir()
    (root / "kubernetes" / "worker.yaml").write_text(
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n"
        "        - name: pdf-worker\n          image: schedgen/service:0.1.0\n"
    )
    (root / "local").mkdir()
    (root / "local" / "supervisord.conf").write_text(f"; {marker}\n")
    return root


def test_create_copies_tree_and_records_provenance(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q", str(project)], check=True)
    subprocess.run(
        [
            "git",
            "-C",
            str(project),
            "-c",
            "user.email=a@b",
            "-c",
            "user.name=a",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "x",
        ],
        check=True,
    )
    head = subprocess.run(
        ["git", "-C", str(project), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    src = _tree(tmp_path / "src", "one")
    store = ReleaseStore(project / ".schedgen")
    release = store.create(src, target="local", profile="small", project_dir=project)
    assert release.status == "pending" and release.previous is None
    assert release.toolkit_version == __version__ and release.git_commit == head
    assert release.images == {
        "api": "schedgen/service:0.1.0",
        "pdf-worker": "schedgen/service:0.1.0",
        "redis": "redis:7.4.1-alpine",
    }
    copied = store.tree(release.id)
    assert (copied / "local" / "supervisord.conf").read_text() == "; one\n"
    assert tree_digest(copied) == tree_digest(src) == release.tree_digest
    on_disk = json.loads((project / ".schedgen" / "releases" / release.id / "release.json").read_text())
    assert on_disk["id"] == release.id and on_disk["target"] == "local"
    # the source changing later does not change the release
    (src / "local" / "supervisord.conf").write_text("; changed\n")
    assert (copied / "local" / "supervisord.conf").read_text() == "; one\n"


def test_live_superseded_previous_and_rollback_bookkeeping(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / ".schedgen")
    a = store.create(_tree(tmp_path / "a", "a"), target="local", profile="small")
    store.set_current(a.id)
    b = store.create(_tree(tmp_path / "b", "b"), target="local", profile="small")
    assert b.previous == a.id and b.created > a.created
    store.set_current(b.id)
    assert store.get(a.id).status == "superseded" and store.current_id() == b.id
    c = store.create(_tree(tmp_path / "c", "c"), target="local", profile="small")
    store.mark(c.id, "failed")
    assert store.current_id() == b.id
    assert store.previous().id == a.id  # type: ignore[union-attr]  # failed c never counts
    assert store.previous(before=c.id).id == b.id  # type: ignore[union-attr]
    assert [r.id for r in store.history()] == [a.id, b.id, c.id]


def test_same_second_same_tree_gets_distinct_ids(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / ".schedgen")
    src = _tree(tmp_path / "a", "a")
    ids = {store.create(src, target="local", profile=None).id for _ in range(3)}
    assert len(ids) == 3


def test_unknown_release_names_recent_ones(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / ".schedgen")
    a = store.create(_tree(tmp_path / "a", "a"), target="local", profile=None)
    with pytest.raises(SchedgenError) as err:
        store.get("20990101-000000-abcdef")
    assert a.id in err.value.one_line()
    with pytest.raises(SchedgenError, match="no release"):
        store.get("../../etc")


def test_prune_keeps_the_newest_and_the_current(tmp_path: Path) -> None:
    store = ReleaseStore(tmp_path / ".schedgen", keep=2)
    first = store.create(_tree(tmp_path / "a", "a"), target="local", profile=None)
    store.set_current(first.id)
    others = [store.create(_tree(tmp_path / f"t{i}", str(i)), target="local", profile=None) for i in range(3)]
    removed = store.prune()
    remaining = [r.id for r in store.history()]
    assert first.id in remaining and others[-1].id in remaining
    assert others[0].id in removed and others[0].id not in remaining


def test_images_in_tree_ignores_non_yaml_and_broken_files(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("a: [unclosed\n")
    (tmp_path / "ok.yml").write_text("services:\n  web:\n    image: nginx:1.27\n")
    assert images_in_tree(tmp_path) == {"web": "nginx:1.27"}
