"""The init / config / secrets / profiles commands, run as the user runs them."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from schedgen_ops.cli.main import main
from schedgen_ops.config import load_secrets


def run(capsys: pytest.CaptureFixture[str], project: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--project", str(project), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SCHEDGEN_") and ("__" in name or name in ("SCHEDGEN_PROFILE", "SCHEDGEN_DOMAIN")):
            monkeypatch.delenv(name)


def test_init_show_redacts_and_reveal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, tmp_path, "init", "--profile", "small", "--domain", "t.example.org")
    assert code == 0 and "profile small" in out
    assert stat.S_IMODE((tmp_path / ".schedgen" / "secrets.env").stat().st_mode) == 0o600
    secrets = load_secrets(tmp_path)
    code, out, _ = run(capsys, tmp_path, "config", "show", "--json")
    data = json.loads(out)
    assert code == 0 and data["domain"] == "t.example.org" and data["derived"]["max_connections"] == 65
    assert set(data["secrets"].values()) == {"********"}
    assert not any(value in out for value in secrets.values())
    code, out, _ = run(capsys, tmp_path, "config", "show", "--reveal", "--json")
    assert json.loads(out)["secrets"] == secrets
    code, out, _ = run(capsys, tmp_path, "config", "show")
    assert yaml.safe_load(out)["profile"] == "small"


def test_get_set_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, tmp_path, "init")
    assert run(capsys, tmp_path, "config", "get", "redis.maxmemory_policy")[1].strip() == "noeviction"
    assert run(capsys, tmp_path, "config", "set", "worker.replicas", "3")[0] == 0
    assert json.loads(run(capsys, tmp_path, "config", "set", "api.replicas", "2", "--json")[1])["value"] == 2
    assert run(capsys, tmp_path, "config", "get", "worker.replicas")[1].strip() == "3"
    assert run(capsys, tmp_path, "config", "get", "derived.max_connections")[1].strip() == "65"
    code, _, err = run(capsys, tmp_path, "config", "set", "worker.replicass", "3")
    assert (
        code == 1 and err.strip() == "error: unknown key 'worker.replicass' (did you mean 'worker.replicas'?)"
    )
    code, _, err = run(capsys, tmp_path, "config", "set", "redis.maxmemory_policy", "allkeys-lru")
    assert code == 1 and "redis.maxmemory_policy" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, tmp_path, "config", "show", "--set", "api.replicas")
    assert code == 2 and "expected KEY=VALUE" in err


def test_secrets_rotate_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, tmp_path, "init")
    before = load_secrets(tmp_path)
    code, out, _ = run(capsys, tmp_path, "secrets", "rotate", "REDIS_PASSWORD")
    assert code == 0 and "rotated REDIS_PASSWORD" in out and before["REDIS_PASSWORD"] not in out
    assert load_secrets(tmp_path)["REDIS_PASSWORD"] != before["REDIS_PASSWORD"]
    assert "POSTGRES_PASSWORD" in run(capsys, tmp_path, "secrets", "list")[1]
    assert "OPS_TOKEN" in json.loads(run(capsys, tmp_path, "secrets", "list", "--json")[1])
    code, out, _ = run(capsys, tmp_path, "secrets", "rotate", "OPS_TOKEN", "--json")
    assert code == 0 and json.loads(out)["rotated"] == "OPS_TOKEN"
    assert load_secrets(tmp_path)["OPS_TOKEN"] not in out
    code, _, err = run(capsys, tmp_path, "secrets", "rotate", "BACKUP_HMAC_KEY")
    assert code == 2 and "foreign" in err and "--force" in err
    code, out, _ = run(capsys, tmp_path, "secrets", "rotate", "BACKUP_HMAC_KEY", "--force")
    assert code == 0 and "rotated BACKUP_HMAC_KEY" in out


def test_profiles_list_show_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(run(capsys, tmp_path, "profiles", "list", "--json")[1])
    assert [r["name"] for r in rows] == ["large", "medium", "small"]
    assert {r["name"]: r["api"] for r in rows} == {"large": "5-20", "medium": "2-5", "small": "1-2"}
    shown = json.loads(run(capsys, tmp_path, "profiles", "show", "large", "--json")[1])
    assert shown["postgres"]["instances"] == 3
    diff = {
        r["key"]: r
        for r in json.loads(run(capsys, tmp_path, "profiles", "diff", "small", "medium", "--json")[1])
    }
    assert diff["api.replicas"]["small"] == 1 and diff["api.replicas"]["medium"] == 3
    assert "redis.maxmemory_policy" not in diff
    code, _, err = run(capsys, tmp_path, "profiles", "show", "huge")
    assert code == 1 and "unknown profile 'huge'" in err
