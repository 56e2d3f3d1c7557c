"""`schedgen loadtest --target`: the client settings come from the project's validated configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from schedgen_ops.config.project import init_project
from schedgen_ops.ops.loadtest.target import resolve_target


def test_target_takes_rate_and_worker_port_from_the_config(tmp_path: Path) -> None:
    init_project(tmp_path, profile="small")
    with (tmp_path / "schedgen.yaml").open("a") as config:
        config.write("service:\n  rate_uploads: 4/minute\nworker:\n  metrics_port: 9345\n")
    resolved = resolve_target("local", url=None, database_url="", project_dir=tmp_path)
    assert resolved.uploads_per_key == 3  # one below the configured per-client limit
    assert resolved.metrics_urls["worker"] == "http://127.0.0.1:9345/metrics"


def test_target_without_a_loadable_config_keeps_the_service_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDGEN_RATE_UPLOADS", "6/hour")
    monkeypatch.setenv("SCHEDGEN_WORKER_METRICS_PORT", "9346")
    (tmp_path / "schedgen.yaml").write_text("profile: no-such-profile\n")
    resolved = resolve_target("local", url=None, database_url="", project_dir=tmp_path)
    assert resolved.uploads_per_key == 5
    assert resolved.metrics_urls["worker"] == "http://127.0.0.1:9346/metrics"
