"""`schedgen db`, `schedgen apikeys` and start-up setting errors, through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.service.db import MIGRATIONS_DIR as MIGRATIONS


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "schedgen_ops.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_db_migrate_and_apikeys(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCHEDGEN_DATABASE_URL", database_url)
    assert main(["db", "migrate", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    # every shipped migration (0001_jobs, 0002_backup_ledger, ...) applies once, in order
    shipped = sorted(int(p.name[:4]) for p in MIGRATIONS.glob("[0-9][0-9][0-9][0-9]_*.sql"))
    assert shipped[:2] == [1, 2]
    assert first["applied"] == shipped and first["version"] == shipped[-1]
    assert main(["db", "migrate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"applied": [], "version": shipped[-1]}
    assert main(["db", "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"version": shipped[-1], "pending": []}

    assert main(["apikeys", "create", "partner", "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["key"].startswith("sgk_") and created["name"] == "partner"
    assert main(["apikeys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(k["id"], k["revoked_at"]) for k in listed] == [(created["id"], None)]
    assert created["key"] not in json.dumps(listed)
    assert main(["apikeys", "revoke", created["id"]]) == 0
    capsys.readouterr()
    assert main(["apikeys", "revoke", created["id"]]) == 1
    assert "no active key" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "error: SCHEDGEN_DATABASE_URL is not set"),
        (
            {"SCHEDGEN_DATABASE_URL": "mysql://x"},
            "error: SCHEDGEN_DATABASE_URL must start with postgresql://",
        ),
        ({"SCHEDGEN_DB_POOL_MAX": "zero"}, "error: invalid setting SCHEDGEN_DB_POOL_MAX"),
        ({"SCHEDGEN_TRUSTED_PROXIES": "10.0.0.0/33"}, "error: invalid setting SCHEDGEN_TRUSTED_PROXIES"),
    ],
)
def test_bad_settings_are_one_line_errors_at_start_up(env: dict[str, str], message: str) -> None:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCHEDGEN_")}
    result = _run("serve", "api", env={**clean, **env})
    assert result.returncode == 1
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
