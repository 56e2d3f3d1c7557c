"""`schedgen render` end to end: initialise, render, validate, --check, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from schedgen_ops.cli.main import main


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SCHEDGEN_") and ("__" in name or name in ("SCHEDGEN_PROFILE", "SCHEDGEN_DOMAIN")):
            monkeypatch.delenv(name)


def run(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(project), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_render_in_an_empty_directory_initialises_a_project(tmp_path: Path, capsys) -> None:
    code, out, err = run(capsys, tmp_path, "render", "--target", "compose", "--set", "domain=ops.example.org")
    assert code == 0, err
    assert f"initialised a new project in {tmp_path}" in out and "valid" in out
    assert (tmp_path / "schedgen.yaml").is_file() and (tmp_path / ".schedgen/secrets.env").is_file()
    compose = (tmp_path / "deploy/compose/traefik/dynamic.yml").read_text()
    assert "Host(`ops.example.org`)" in compose
    code, out, _ = run(capsys, tmp_path, "render", "--check", "--json")
    result = json.loads(out)
    assert code == 0 and result["valid"] and result["checked_only"] and result["files"] == 0


def test_check_fails_on_a_hand_edited_tree(tmp_path: Path, capsys) -> None:
    run(capsys, tmp_path, "init", "--profile", "small")
    assert run(capsys, tmp_path, "render", "-t", "compose", "-o", str(tmp_path / "out"))[0] == 0
    conf = tmp_path / "out/compose/redis/redis.conf"
    conf.write_text(conf.read_text().replace("noeviction", "allkeys-lru"))
    code, _, err = run(capsys, tmp_path, "render", "--check", "-o", str(tmp_path / "out"))
    assert code == 1
    assert "invalid: compose/redis/redis.conf: maxmemory-policy must be noeviction" in err
    assert err.strip().splitlines()[-1].startswith("error: ")


def test_invalid_configuration_is_one_line_and_writes_nothing(tmp_path: Path, capsys) -> None:
    run(capsys, tmp_path, "init")
    sets = ["--set", "worker.max_replicas=1", "--set", "worker.min_replicas=2"]
    code, _, err = run(capsys, tmp_path, "render", *sets)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "worker" in err and "max_replicas (1) is below min_replicas (2)" in err
    assert not (tmp_path / "deploy").exists()
    code, _, err = run(capsys, tmp_path, "render", "--target", "swarm")
    assert code == 2 and "unknown target 'swarm'" in err


def test_profile_option_overrides_the_project_profile(tmp_path: Path, capsys) -> None:
    """(Every profile x target is covered by test_render_matrix; this checks the CLI path.)"""
    run(capsys, tmp_path, "init", "--profile", "small")
    code, out, err = run(capsys, tmp_path, "render", "--profile", "large", "-t", "kubernetes", "--json")
    assert code == 0, err
    assert json.loads(out)["valid"]
    assert json.loads((tmp_path / "deploy/render.json").read_text())["profile"] == "large"
    assert (tmp_path / "deploy/kubernetes/minio.yaml").is_file()
