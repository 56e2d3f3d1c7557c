"""Secrets of the least-privilege split: one password per role and user, generated once into older projects;
webhook URLs stored as secrets (stdin, validated, redacted, never printed in full)."""

from __future__ import annotations

import io
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.config.secrets import (
    GENERATED_ON_LOAD,
    SECRET_NAMES,
    load_secrets,
    redact_url,
    secrets_path,
    write_env_file,
)

HOOK = "https://hooks.example.org/services/T0/B1/very-secret-key-0123456789"
_STDIN = pytest.MonkeyPatch()


def run(
    capsys: pytest.CaptureFixture[str], project: Path, *args: str, stdin: str | None = None
) -> tuple[int, str, str]:
    if stdin is not None:
        _STDIN.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["--project", str(project), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import os

    for name in list(os.environ):
        if name.startswith("SCHEDGEN_"):
            monkeypatch.delenv(name)
    yield
    _STDIN.undo()


def test_an_older_secrets_file_gains_the_role_passwords_once(tmp_path: Path) -> None:
    old = {
        "POSTGRES_PASSWORD": "old-owner-password-0123",
        "REDIS_PASSWORD": "old-redis-password-0123",
        "OPS_TOKEN": "old-token-0123456789",
        "S3_ACCESS_KEY": "sgoldkey",
        "S3_SECRET_KEY": "old-s3-secret-0123",
        "GRAFANA_ADMIN_PASSWORD": "old-grafana-0123",
    }
    write_env_file(secrets_path(tmp_path), old)
    first = load_secrets(tmp_path)
    assert {k: first[k] for k in old} == old  # nothing that existed changes
    assert set(first) >= GENERATED_ON_LOAD and all(len(first[n]) >= 16 for n in GENERATED_ON_LOAD)
    # Every role and user has its own value: no password is shared with another or with an old one.
    assert len({first[n] for n in GENERATED_ON_LOAD} | set(old.values())) == len(GENERATED_ON_LOAD) + len(old)
    assert stat.S_IMODE(secrets_path(tmp_path).stat().st_mode) == 0o600
    assert load_secrets(tmp_path) == first  # generated once, then stable
    assert set(SECRET_NAMES) - set(first) <= {"BACKUP_HMAC_KEY", "PGBACKREST_CIPHER_PASS"}


def test_webhook_urls_are_set_from_stdin_validated_and_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, tmp_path, "init", "--profile", "small")[0] == 0
    code, out, _ = run(capsys, tmp_path, "secrets", "set", "ALERT_WEBHOOK_URL", "--json", stdin=HOOK + "\n")
    assert code == 0 and json.loads(out)["stored"] == "ALERT_WEBHOOK_URL" and HOOK not in out
    assert load_secrets(tmp_path)["ALERT_WEBHOOK_URL"] == HOOK
    code, out, _ = run(capsys, tmp_path, "config", "show", "--json")
    assert json.loads(out)["secrets"]["ALERT_WEBHOOK_URL"] == "********" and "very-secret-key" not in out
    for bad in ("ftp://hooks.example.org/x", "https://hooks.example.org/a b", "not a url"):
        code, _, err = run(capsys, tmp_path, "secrets", "set", "BACKUP_WEBHOOK_URL", stdin=bad)
        assert code == 1 and "http:// or https:// URL" in err
    code, _, err = run(capsys, tmp_path, "secrets", "set", "ALERT_WEBHOOK", stdin=HOOK)
    assert code == 1 and "ALERT_WEBHOOK_URL" in err
    code, _, _ = run(capsys, tmp_path, "secrets", "set", "ALERT_WEBHOOK_URL", stdin="")
    assert code == 0 and "ALERT_WEBHOOK_URL" not in load_secrets(tmp_path)
    assert "BACKUP_WEBHOOK_URL" in json.loads(run(capsys, tmp_path, "secrets", "list", "--json")[1])


def test_a_failed_scheduled_backup_posts_to_the_secret_webhook_and_redacts_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The rendered units carry no URL: `schedgen backup` reads BACKUP_WEBHOOK_URL from secrets.env, and a
    webhook that cannot be reached is reported with its key hidden."""
    run(capsys, tmp_path, "init", "--profile", "small")
    unreachable = "http://127.0.0.1:9/hooks/very-secret-key-0123456789"
    assert run(capsys, tmp_path, "secrets", "set", "BACKUP_WEBHOOK_URL", stdin=unreachable)[0] == 0
    code, out, err = run(capsys, tmp_path, "backup")  # no stack runs: fails at once
    assert code == 1
    assert "warning: webhook http://127.0.0.1/******** unreachable" in err, err
    assert "very-secret-key" not in out + err
    assert redact_url(HOOK) == "https://hooks.example.org/********"
