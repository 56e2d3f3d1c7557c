"""The typed ``health:`` section of the configuration reaches `schedgen health` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.config import load_config
from schedgen_ops.errors import SchedgenError


def _health(capsys: pytest.CaptureFixture[str], project: Path) -> tuple[int, dict, str]:
    code = main(["--project", str(project), "health", "--only", "disk", "--data-dir", str(project), "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_schedgen_yaml_health_override_is_the_threshold_health_judges_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\n")
    code, doc, err = _health(capsys, tmp_path)
    default = next(c for c in doc["checks"] if c["id"] == "disk.data")
    assert default["threshold"] == "warn < 15%, critical < 5% free" and err == ""

    # Free space is always below 99.9%: the override turns the same disk into a warning.
    (tmp_path / "schedgen.yaml").write_text(
        "profile: small\nhealth:\n  disk_free_warn_ratio: 0.999\n  disk_free_critical_ratio: 0.0001\n"
    )
    code, doc, err = _health(capsys, tmp_path)
    check = next(c for c in doc["checks"] if c["id"] == "disk.data")
    assert check["threshold"] == "warn < 100%, critical < 0% free"
    assert check["status"] == "warn" and code == doc["exit_code"] == 1
    assert err == ""  # the configuration loaded: no "using built-in defaults" warning


def test_health_section_is_validated_with_the_configuration(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\nhealth:\n  queue_depth_warn: 0\n")
    with pytest.raises(SchedgenError, match=r"health\.queue_depth_warn"):
        load_config(tmp_path)
    (tmp_path / "schedgen.yaml").write_text("profile: small\nhealth:\n  queue_depth_wran: 5\n")
    with pytest.raises(SchedgenError, match="queue_depth_wran"):
        load_config(tmp_path)
    # Below the warn level the profile's alerts imply (QueueBacklog): refused at load, naming the key.
    (tmp_path / "schedgen.yaml").write_text("profile: small\nhealth:\n  queue_depth_critical: 3\n")
    with pytest.raises(SchedgenError, match="queue_depth_critical"):
        load_config(tmp_path)


def test_set_overrides_a_health_threshold(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\n")
    cfg = load_config(tmp_path, overrides=["health.backup_age_warn_s=3600"])
    assert cfg.health_thresholds().backup_age_warn_s == 3600
    assert cfg.health_thresholds().backup_age_critical_s == 26 * 3600  # still from alerts.backup_max_age_h
