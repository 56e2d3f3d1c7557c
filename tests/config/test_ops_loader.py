"""The one config loader of ops commands (health, backup, loadtest): service secrets in env hidden."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import SecretStr

from schedgen_ops.config.model import SECRET_SERVICE_FIELDS
from schedgen_ops.config.ops_loader import (
    load_ops_config,
    secret_env_names,
    try_load_config,
    without_secret_env,
)
from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ServiceSettings

SECRETS = {
    "SCHEDGEN_DATABASE_URL": "postgresql://u:pw@127.0.0.1:5432/db",
    "SCHEDGEN_REDIS_URL": "redis://:pw@127.0.0.1:6379/0",
    "SCHEDGEN_OPS_TOKEN": "t" * 32,
    "SCHEDGEN_S3_ACCESS_KEY": "access",
    "SCHEDGEN_S3_SECRET_KEY": "secret-key",
}


def test_the_hidden_variables_are_exactly_the_service_secret_settings() -> None:
    """One definition: every SecretStr setting of the service, and nothing else."""
    secret_fields = {name for name, f in ServiceSettings.model_fields.items() if f.annotation is SecretStr}
    assert set(SECRET_SERVICE_FIELDS) == secret_fields
    assert secret_env_names() == set(SECRETS)


def test_loads_with_every_service_secret_exported_and_puts_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "schedgen.yaml").write_text("profile: small\nalerts:\n  queue_backlog: 9\n")
    with without_secret_env():
        assert not set(SECRETS) & set(os.environ)
    assert {name: os.environ[name] for name in SECRETS} == SECRETS
    config = load_ops_config(tmp_path)
    assert config.alerts.queue_backlog == 9
    assert config.service.database_url.get_secret_value() == ""  # the environment's secrets stay out
    lenient = try_load_config(tmp_path)
    assert lenient is not None and lenient.model_dump() == config.model_dump()
    assert {name: os.environ[name] for name in SECRETS} == SECRETS


def test_a_broken_configuration_raises_strictly_and_warns_leniently(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCHEDGEN_REDIS_URL", SECRETS["SCHEDGEN_REDIS_URL"])
    (tmp_path / "schedgen.yaml").write_text("profile: small\nalertz: {}\n")
    with pytest.raises(SchedgenError, match="alertz"):
        load_ops_config(tmp_path)
    warnings: list[str] = []
    assert try_load_config(tmp_path, warnings) is None
    assert len(warnings) == 1 and "alertz" in warnings[0] and "built-in defaults" in warnings[0]
    assert os.environ["SCHEDGEN_REDIS_URL"] == SECRETS["SCHEDGEN_REDIS_URL"]  # restored after a failed load
