"""Where health looks (precedence of flags, environment and target) and the S3 storage probe."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from schedgen_ops.config import load_config
from schedgen_ops.ops.health import Endpoints, HealthThresholds, Status, resolve_endpoints, run_health
from schedgen_ops.ops.health.endpoints import redact
from schedgen_ops.runtime.dataservices import free_port


def test_flags_beat_environment_and_compose_asks_for_urls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = load_config(tmp_path)
    monkeypatch.setenv("SCHEDGEN_DATABASE_URL", "postgresql://env@127.0.0.1:1/env")
    monkeypatch.setenv("SCHEDGEN_REDIS_URL", "redis://127.0.0.1:2/0")
    ep = resolve_endpoints("local", tmp_path, database_url="postgresql://flag@127.0.0.1:3/flag")
    assert ep.database_url == "postgresql://flag@127.0.0.1:3/flag"
    assert ep.redis_url == "redis://127.0.0.1:2/0"
    assert ep.api_url == "http://127.0.0.1:8000"  # the default profile's api port
    assert ep.backup_dir == tmp_path / "backups"
    monkeypatch.delenv("SCHEDGEN_DATABASE_URL")
    compose = resolve_endpoints("compose", tmp_path, config=config)
    assert compose.database_url == ""
    report = run_health(compose, HealthThresholds(), only=["postgres"])
    [check] = report.checks
    assert check.status is Status.UNKNOWN and "--database-url" in (check.hint or "")
    assert compose.domain == "schedule.example.org"  # the profile's public domain: its certificate is checked
    assert compose.api_url == "https://schedule.example.org"


def test_passwords_never_reach_the_report() -> None:
    assert redact("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    ep = Endpoints(redis_url=f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    report = run_health(ep, HealthThresholds(), only=["redis"])
    assert report.checks[0].status is Status.CRITICAL
    assert "s3cret" not in str(report.to_dict())


def test_s3_storage(s3_endpoint: str, s3_bucket_name: str) -> None:
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=s3_endpoint, **creds).create_bucket(Bucket=s3_bucket_name)
    ep = Endpoints(
        storage_url=f"s3://{s3_bucket_name}/prefix",
        s3_endpoint_url=s3_endpoint,
        s3_access_key="test",
        s3_secret_key="test",
    )
    assert run_health(ep, HealthThresholds(), only=["storage"]).checks[0].status is Status.OK
    ep.storage_url = "s3://no-such-bucket/prefix"
    [check] = run_health(ep, HealthThresholds(), only=["storage"]).checks
    assert check.status is Status.CRITICAL and check.hint
