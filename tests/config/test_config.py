"""Configuration: profiles, precedence, validation errors naming the key, secrets handling."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from schedgen_ops.config import SECRET_NAMES, available_profiles, load_config, load_secrets
from schedgen_ops.config.project import init_project, set_value
from schedgen_ops.config.secrets import rotate_secret, secrets_path
from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ServiceSettings

NO_ENV: dict[str, str] = {}


def cfg(tmp_path: Path, *overrides: str, profile: str | None = None, env: dict[str, str] | None = None):
    return load_config(tmp_path, profile=profile, overrides=list(overrides), environ=env or NO_ENV)


def error(tmp_path: Path, *overrides: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(SchedgenError) as info:
        cfg(tmp_path, *overrides, env=env)
    message = info.value.one_line()
    assert "\n" not in message
    return message


def test_profiles_carry_the_documented_sizing(tmp_path: Path) -> None:
    assert available_profiles() == ["large", "medium", "small"]
    small, medium, large = (cfg(tmp_path, profile=p) for p in ("small", "medium", "large"))
    assert (small.host.cpus, small.host.memory_mb) == (2, 4096)
    assert (small.api.replicas, small.api.memory_mb, small.worker.replicas, small.worker.memory_mb) == (
        1,
        1024,
        2,
        1024,
    )
    assert (small.postgres.memory_mb, small.redis.memory_mb, small.minio.enabled) == (1024, 512, False)
    assert (medium.host.cpus, medium.host.memory_mb) == (4, 16384)
    assert (medium.api.replicas, medium.api.memory_mb, medium.worker.replicas, medium.worker.memory_mb) == (
        3,
        2048,
        5,
        2048,
    )
    assert (medium.postgres.memory_mb, medium.redis.memory_mb, medium.minio.memory_mb) == (4096, 2048, 2048)
    assert large.platform == "kubernetes"
    assert (large.api.min_replicas, large.api.max_replicas) == (5, 20)
    assert (large.worker.min_replicas, large.worker.max_replicas) == (10, 50)
    assert (large.postgres.instances, large.redis.sentinel, large.minio.nodes) == (3, True, 4)
    for c in (small, medium, large):
        assert c.redis.maxmemory_policy == "noeviction" and c.redis.appendonly is True
        assert (c.backup.keep_daily, c.backup.keep_weekly, c.backup.keep_monthly) == (7, 4, 12)
        s = c.service
        assert (s.upload_max_bytes, s.upload_max_pages, s.parse_timeout_s, s.job_timeout_s) == (
            10 * 2**20,
            100,
            60,
            300,
        )
        assert (s.job_retries, s.rate_uploads, s.rate_status, s.rate_requests) == (
            3,
            "10/hour",
            "100/minute",
            "100/minute",
        )
        assert (s.result_ttl_s, s.failed_ttl_s) == (86400, 86400)


def test_service_defaults_have_one_home() -> None:
    """Profiles may only override service settings that differ by scale, never restate defaults."""
    from schedgen_ops.config.loader import profiles_dir

    for path in profiles_dir().glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        for key, value in (data.get("service") or {}).items():
            assert key in ServiceSettings.model_fields
            default = ServiceSettings.model_fields[key].get_default(call_default_factory=True)
            assert value != default, f"{path.name}: service.{key}={value} repeats the default"


def test_precedence_profile_project_env_set(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: medium\napi: {replicas: 4}\nworker: {replicas: 6}\n")
    env = {"SCHEDGEN_API__REPLICAS": "5", "SCHEDGEN_DB_POOL_MAX": "99"}  # single-level = service runtime env
    c = cfg(tmp_path, env=env)
    assert c.profile == "medium" and c.worker.replicas == 6 and c.api.replicas == 5
    assert c.service.db_pool_max == 8  # SCHEDGEN_DB_POOL_MAX is the service's own variable, not an override
    c = cfg(tmp_path, "api.replicas=3", "service.db_pool_max=6", env=env)
    assert c.api.replicas == 3 and c.service.db_pool_max == 6
    (tmp_path / "schedgen.yaml").write_text("profile: medium\n")
    assert cfg(tmp_path, env={"SCHEDGEN_PROFILE": "small"}).profile == "small"
    assert cfg(tmp_path, "profile=small", profile="large").profile == "large"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("api.replica=2", "unknown key 'api.replica' (did you mean 'api.replicas'?)"),
        ("service.db_pol_max=2", "did you mean 'service.db_pool_max'?"),
        ("redis.maxmemory_polcy=noeviction", "did you mean 'redis.maxmemory_policy'?"),
        ("api.cpus=lots", "api.cpus"),
        ("worker.replicas=many", "worker.replicas"),
        ("redis.maxmemory_policy=allkeys-lru", "redis.maxmemory_policy"),
        (
            "postgres.max_connections=20",
            "postgres.max_connections (20) is below the pools' connection budget (65",
        ),
        ("service.db_pool_max=500", "postgres"),
        ("alerts.latency_for=soon", "alerts.latency_for"),
        ("redis.maxmemory_mb=600", "maxmemory_mb (600) must be below memory_mb (512)"),
        ("api.service.db_pool_mx=1", "did you mean 'api.service.db_pool_max'?"),
        ("service.database_url=postgresql://u:p@h/d", "service.database_url is a secret"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, override: str, expected: str) -> None:
    if override == "service.db_pool_max=500":
        override, extra = "postgres.max_connections=100", ["service.db_pool_max=50"]
        message = error(tmp_path, override, *extra)
        assert "postgres.max_connections (100) is below the pools' connection budget" in message
        return
    assert expected in error(tmp_path, override)


def test_workers_max_below_min_is_an_error(tmp_path: Path) -> None:
    message = error(tmp_path, "worker.min_replicas=4", "worker.max_replicas=3", "worker.replicas=4")
    assert "worker" in message and "max_replicas (3) is below min_replicas (4)" in message


def test_project_file_typos_and_env_typos_are_errors(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\npostgress: {memory_mb: 1}\n")
    assert "unknown key 'postgress' (did you mean 'postgres'?)" in error(tmp_path)
    (tmp_path / "schedgen.yaml").write_text("profile: smal\n")
    assert "unknown profile 'smal' (did you mean 'small'?)" in error(tmp_path)
    (tmp_path / "schedgen.yaml").unlink()
    assert "SCHEDGEN_API__REPLICA" in error(tmp_path, env={"SCHEDGEN_API__REPLICA": "2"})


def test_connection_budget_sums_every_pool_at_maximum_replicas(tmp_path: Path) -> None:
    large = cfg(tmp_path, profile="large")
    api, worker = large.role_settings("api"), large.role_settings("worker")
    expected = (
        large.api.max_replicas * api.api_workers * api.db_pool_max
        + large.worker.max_replicas * worker.worker_processes * worker.db_pool_max
        + large.postgres.reserve_connections
    )
    assert large.connection_budget()["total"] == expected == large.max_connections() == 415
    assert worker.db_pool_max == 2 and api.db_pool_max == 5  # per-role override


def test_semesters_and_checklist_ignore(tmp_path: Path) -> None:
    c = cfg(
        tmp_path,
        "semesters.S1.start=2026-02-09",
        "semesters.S1.end=2026-06-05",
        "checklist.ignore.BK-3=offsite copy handled by the university",
    )
    assert c.semesters is not None and c.semesters["S1"].start.isoformat() == "2026-02-09"
    from schedgen_ops.parsing.semesters import resolve_semester

    assert resolve_semester("S1", c.semesters).end.isoformat() == "2026-06-05"
    assert "semester ends" in error(tmp_path, "semesters.S2.start=2026-08-01", "semesters.S2.end=2026-07-01")
    assert c.checklist["ignore"] == {"BK-3": "offsite copy handled by the university"}
    assert "S3" in error(tmp_path, "semesters.S3.start=2026-01-01")


def test_init_writes_secrets_once_with_mode_0600(tmp_path: Path) -> None:
    result = init_project(tmp_path, profile="medium", domain="sched.example.org")
    assert result["created_project"] and result["created_secrets"]
    path = secrets_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = load_secrets(tmp_path)
    assert set(first) == set(SECRET_NAMES)
    assert all(len(v) >= 20 for v in first.values()) and len(set(first.values())) == len(first)
    again = init_project(tmp_path)
    assert not again["created_secrets"] and load_secrets(tmp_path) == first
    c = load_config(tmp_path, environ=NO_ENV)
    assert (c.profile, c.domain) == ("medium", "sched.example.org")
    with pytest.raises(SchedgenError, match="already exists"):
        init_project(tmp_path, profile="small")


def test_rotate_changes_exactly_one_secret(tmp_path: Path) -> None:
    init_project(tmp_path)
    before = load_secrets(tmp_path)
    rotate_secret(tmp_path, "OPS_TOKEN")
    after = load_secrets(tmp_path)
    assert after["OPS_TOKEN"] != before["OPS_TOKEN"]
    assert {k: v for k, v in after.items() if k != "OPS_TOKEN"} == {
        k: v for k, v in before.items() if k != "OPS_TOKEN"
    }
    assert stat.S_IMODE(secrets_path(tmp_path).stat().st_mode) == 0o600
    with pytest.raises(SchedgenError) as info:
        rotate_secret(tmp_path, "OPS_TOKN")
    assert "did you mean OPS_TOKEN" in info.value.one_line()


def test_secrets_readable_by_others_are_refused(tmp_path: Path) -> None:
    init_project(tmp_path)
    os.chmod(secrets_path(tmp_path), 0o644)
    with pytest.raises(SchedgenError) as info:
        load_secrets(tmp_path)
    assert "mode 0644" in info.value.one_line() and "chmod 600" in info.value.one_line()


def test_set_value_validates_and_leaves_file_unchanged_on_error(tmp_path: Path) -> None:
    init_project(tmp_path)
    set_value(tmp_path, "api.replicas", "2")
    assert load_config(tmp_path, environ=NO_ENV).api.replicas == 2
    before = (tmp_path / "schedgen.yaml").read_text()
    with pytest.raises(SchedgenError, match="max_replicas"):
        set_value(tmp_path, "api.replicas", "9")
    with pytest.raises(SchedgenError) as info:
        set_value(tmp_path, "api.replica", "1")
    assert "did you mean 'api.replicas'" in info.value.one_line()
    assert (tmp_path / "schedgen.yaml").read_text() == before


def test_service_environment_of_the_shell_does_not_leak_into_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ServiceSettings is a BaseSettings; the config must not read the process's SCHEDGEN_<FIELD> vars."""
    monkeypatch.setenv("SCHEDGEN_DATABASE_URL", "postgresql://u:p@db/x")
    monkeypatch.setenv("SCHEDGEN_DB_POOL_MAX", "77")
    monkeypatch.setenv("SCHEDGEN_JOB_TIMEOUT_S", "5")
    c = load_config(tmp_path, profile="small")  # the real os.environ
    assert c.service.db_pool_max == 5 and c.service.database_url.get_secret_value() == ""
    assert c.role_settings("worker").job_timeout_s == 300
    monkeypatch.setenv("SCHEDGEN_SERVICE__JOB_TIMEOUT_S", "200")
    assert load_config(tmp_path, profile="small").role_settings("worker").job_timeout_s == 200


@pytest.mark.parametrize("name", ["PGBACKREST_CIPHER_PASS", "BACKUP_HMAC_KEY"])
def test_rotating_a_key_existing_data_depends_on_needs_force(tmp_path: Path, name: str) -> None:
    """A new cipher pass cannot read the old repository, a new HMAC key cannot vouch for the old sets."""
    from schedgen_ops.config.secrets import parse_env_file, write_env_file

    init_project(tmp_path)
    path = secrets_path(tmp_path)
    values = parse_env_file(path.read_text(encoding="utf-8"))
    values.pop(name, None)
    write_env_file(path, values)
    rotate_secret(tmp_path, name)  # absent: adding it loses nothing
    first = parse_env_file(path.read_text(encoding="utf-8"))[name]
    with pytest.raises(SchedgenError) as info:
        rotate_secret(tmp_path, name)
    assert info.value.code == "rotation_loses_data" and "--force" in info.value.one_line()
    assert parse_env_file(path.read_text(encoding="utf-8"))[name] == first  # untouched
    rotate_secret(tmp_path, name, force=True)
    assert parse_env_file(path.read_text(encoding="utf-8"))[name] != first


@pytest.mark.parametrize(
    ("validator", "good"),
    [
        ("hostname", "schedule.example.org"),
        ("email", "ops@example.org"),
        ("bucket", "schedgen-pitr"),
        ("pg_identifier", "schedgen_app"),
        ("queue_name", "pdf-jobs"),
        ("image_ref", "schedgen/service:1.0"),
        ("relative_path", "backups/daily"),
    ],
)
def test_a_trailing_newline_is_refused_by_every_pattern_validator(validator: str, good: str) -> None:
    """`$` also matches before a final newline: "0\\n" passed as a domain and split Traefik's rule in two."""
    from schedgen_ops.config import values

    check = getattr(values, validator)
    assert check(good) == good
    for bad in (f"{good}\n", f"{good}\r\n"):
        with pytest.raises(ValueError):
            check(bad)


def test_a_backup_id_with_a_trailing_newline_is_refused() -> None:
    """Backup ids become directory names and S3 keys."""
    from schedgen_ops.ops.backup.manifest import check_backup_id

    assert check_backup_id("20261128T023000Z") == "20261128T023000Z"
    with pytest.raises(SchedgenError):
        check_backup_id("20261128T023000Z\n")


def test_a_bare_off_for_the_front_door_tls_means_off(tmp_path: Path) -> None:
    """YAML reads ``tls: off`` as false; both the file and ``--set`` mean the mode "off"."""
    init_project(tmp_path, profile="small")
    assert load_config(tmp_path, overrides=["frontdoor.tls=off"], environ={}).frontdoor.tls == "off"
    data = yaml.safe_load((tmp_path / "schedgen.yaml").read_text())
    data["frontdoor"] = {"tls": False}
    (tmp_path / "schedgen.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path, environ={}).frontdoor.tls == "off"
    with pytest.raises(SchedgenError, match=r"frontdoor\.tls"):
        load_config(tmp_path, overrides=["frontdoor.tls=on"], environ={})
