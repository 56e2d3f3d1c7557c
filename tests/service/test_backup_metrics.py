"""The backup age series on the api's /metrics come from the backup ledger `schedgen backup` writes."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest
from stackkit import Stack

from schedgen_ops.cli.main import main


def _gauge(text: str, name: str) -> float | None:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_backup_and_verify_appear_on_the_api_metrics(
    service_stack, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    api: Stack = service_stack()  # the api applies the migrations (backup_ledger included) at start-up
    before = api.client.get("/metrics").text
    assert _gauge(before, "schedgen_backup_ledger_up") == 1.0
    # Never backed up: no series, so BackupTooOld's absent() fires.
    assert _gauge(before, "schedgen_backup_last_success_timestamp_seconds") is None

    project, backups = tmp_path / "project", tmp_path / "backups"
    project.mkdir()
    common = ["--project", str(project), "backup"]
    assert main([*common, "--dir", str(backups), "--database-url", database_url, "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    finished = datetime.fromisoformat(manifest["finished_at"].replace("Z", "+00:00")).timestamp()

    after = api.client.get("/metrics").text
    assert _gauge(after, "schedgen_backup_last_success_timestamp_seconds") == pytest.approx(finished, abs=1)
    assert _gauge(after, "schedgen_backup_last_verified_timestamp_seconds") is None

    verify = [*common, "verify", "--dir", str(backups), "--database-url", database_url, "--json"]
    assert main(verify) == 0
    verified_at = json.loads(capsys.readouterr().out)["verification"]["verified_at"]
    verified = datetime.fromisoformat(verified_at.replace("Z", "+00:00")).timestamp()
    text = api.client.get("/metrics").text
    assert _gauge(text, "schedgen_backup_last_verified_timestamp_seconds") == pytest.approx(verified, abs=1)
    assert _gauge(text, "schedgen_backup_last_success_timestamp_seconds") == pytest.approx(finished, abs=1)
