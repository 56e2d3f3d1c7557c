"""PITR pieces without a server: the health judgement of pg_stat_archiver rows, recovery targets, the
Postgres archive settings each runtime renders, and the alert rules under promtool."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest

from schedgen_ops.config import load_config
from schedgen_ops.config.secrets import generate_secrets
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget
from schedgen_ops.ops.health.checks.wal_archive import LAG_CRITICAL_S, judge
from schedgen_ops.ops.health.model import Status
from schedgen_ops.render.engine import render_files
from schedgen_ops.render.pitr import archive_settings

NOW = dt.datetime(2026, 12, 2, 3, 0, tzinfo=dt.UTC)
SEG = 16 * 1024 * 1024


def _row(**over: object) -> tuple[object, ...]:
    base: dict[str, object] = {
        "mode": "on",
        "archived": 10,
        "last_wal": "00000001000000000000000A",
        "last_time": NOW - dt.timedelta(seconds=30),
        "failed": 0,
        "failed_wal": None,
        "failed_time": None,
        "now": NOW,
        "current": "00000001000000000000000B",
        "seg": SEG,
    }
    base.update(over)
    return tuple(base.values())


def _status(results: list, name: str) -> Status:
    return next(r.status for r in results if r.name == name)


def test_archiving_that_keeps_up_is_ok() -> None:
    results = judge(_row())
    assert _status(results, "wal_archive_failures") is Status.OK
    assert _status(results, "wal_archive_age") is Status.OK


def test_failure_newer_than_the_last_success_is_critical() -> None:
    results = judge(_row(failed=3, failed_wal="00000001000000000000000B", failed_time=NOW))
    assert _status(results, "wal_archive_failures") is Status.CRITICAL
    # An old failure followed by successes is not.
    old = judge(_row(failed=3, failed_time=NOW - dt.timedelta(hours=1)))
    assert _status(old, "wal_archive_failures") is Status.OK


def test_lag_is_critical_only_past_five_minutes_with_a_completed_segment_waiting() -> None:
    late = NOW - dt.timedelta(seconds=LAG_CRITICAL_S + 1)
    lagging = judge(_row(last_time=late, current="00000001000000000000000D"))
    assert _status(lagging, "wal_archive_age") is Status.CRITICAL
    just_in = judge(
        _row(last_time=NOW - dt.timedelta(seconds=LAG_CRITICAL_S - 1), current="00000001000000000000000D")
    )
    assert _status(just_in, "wal_archive_age") is Status.OK
    idle = judge(_row(last_time=NOW - dt.timedelta(hours=5)))  # current = last + 1: nothing to archive
    assert _status(idle, "wal_archive_age") is Status.OK
    # Across a log boundary (…0000FF -> next log's 000000) on a new timeline: still one step.
    crossing = judge(
        _row(last_wal="0000000100000000000000FF", current="000000020000000100000000", last_time=late)
    )
    assert _status(crossing, "wal_archive_age") is Status.OK


def test_archive_mode_off_reports_nothing() -> None:
    assert judge(_row(mode="off")) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [("yesterday", "neither 'latest' nor"), ("2026-12-02T02:29:00", "no time zone"), ("", "neither")],
)
def test_recovery_targets_that_are_refused(text: str, problem: str) -> None:
    with pytest.raises(SchedgenError, match=problem) as info:
        RecoveryTarget.parse(text)
    assert info.value.exit_code == 2


def test_recovery_target_options() -> None:
    assert RecoveryTarget.parse("latest").options() == ["--type=default"]
    at = RecoveryTarget.parse("2026-12-02T04:29:00.5+02:00")
    assert at.options() == [
        "--type=time",
        "--target=2026-12-02 02:29:00.500000+00",
        "--target-action=promote",
    ]


def test_profiles_turn_pitr_on_for_medium_and_large_only(tmp_path: Path) -> None:
    on = {}
    for profile in ("small", "medium", "large"):
        (tmp_path / "schedgen.yaml").write_text(f"profile: {profile}\n")
        on[profile] = load_config(tmp_path).backup.pitr.enabled
    assert on == {"small": False, "medium": True, "large": True}


def test_local_archive_command_survives_supervisord_quoting(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text(
        "profile: small\nbackup: {pitr: {enabled: true, archive_timeout_s: 30}}\n"
    )
    config = load_config(tmp_path)
    settings = archive_settings(config, "local", tmp_path / ".schedgen")
    assert settings["archive_timeout"] == "30s"
    files, _ = render_files(config, generate_secrets(), "local", tmp_path)
    conf = files["local/supervisord.conf"]
    line = next(line for line in conf.splitlines() if line.startswith("command=") and "/postgres -D" in line)
    # supervisord expands %% to % and splits with shlex: one -c argument holding the whole command.
    import shlex

    argv = shlex.split(line.removeprefix("command=").replace("%%", "%"))
    value = argv[argv.index("archive_mode=on") + 2] if "archive_mode=on" in argv else ""
    commands = [a for a in argv if a.startswith("archive_command=")]
    assert commands == [
        f"archive_command=pgbackrest --config={tmp_path}/.schedgen/pgbackrest/pgbackrest.conf "
        "--stanza=schedgen archive-push %p"
    ], value
    assert archive_settings(config, "kubernetes", tmp_path) == {}  # CloudNativePG archives itself


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_pitr_alert_rules_pass_their_promtool_tests(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: medium\n")
    files, _ = render_files(load_config(tmp_path), generate_secrets(), "compose", tmp_path)
    prom = tmp_path / "prom"
    for name in ("rules/pitr.yml", "tests/pitr.test.yml"):
        (prom / name).parent.mkdir(parents=True, exist_ok=True)
        (prom / name).write_text(files[f"compose/prometheus/{name}"])
    out = subprocess.run(
        ["promtool", "test", "rules", "tests/pitr.test.yml"], cwd=prom, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (tmp_path / "schedgen.yaml").write_text("profile: small\n")
    small, _ = render_files(load_config(tmp_path), generate_secrets(), "compose", tmp_path)
    assert "compose/prometheus/rules/pitr.yml" not in small  # PITR off: no alert on a missing metric


def _tree(tmp_path: Path, profile: str, pitr: bool, target: str) -> Path:
    project = tmp_path / f"{profile}-{pitr}-{target}"
    project.mkdir()
    (project / "schedgen.yaml").write_text(
        f"profile: {profile}\nbackup: {{pitr: {{enabled: {str(pitr).lower()}}}}}\n"
    )
    files, secret_files = render_files(load_config(project), generate_secrets(), target, project)
    out = project / "deploy"
    for rel, text in {**files, **secret_files}.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(text)
    return out


@pytest.mark.parametrize(("profile", "target"), [("medium", "local"), ("large", "kubernetes")])
def test_readiness_requires_pitr_on_production_profiles(tmp_path: Path, profile: str, target: str) -> None:
    from schedgen_ops.ops.readiness.checks_pitr import check_pitr
    from schedgen_ops.ops.readiness.context import Context
    from schedgen_ops.ops.readiness.tree import RenderedTree

    def findings(pitr: bool) -> list[bool]:
        out = _tree(tmp_path, profile, pitr, target)
        return [f.ok for f in check_pitr(Context(tmp_path, tree=RenderedTree(out), profile=profile))]

    assert findings(True) == [True]
    assert findings(False) == [False]


def test_readiness_leaves_pitr_opt_in_on_small(tmp_path: Path) -> None:
    from schedgen_ops.ops.readiness.checks_pitr import check_pitr
    from schedgen_ops.ops.readiness.context import Context
    from schedgen_ops.ops.readiness.model import NotApplicable
    from schedgen_ops.ops.readiness.tree import RenderedTree

    out = _tree(tmp_path, "small", False, "local")
    with pytest.raises(NotApplicable, match="opt-in"):
        check_pitr(Context(tmp_path, tree=RenderedTree(out), profile="small"))


def test_large_renders_cloudnativepg_object_store_backups(tmp_path: Path) -> None:
    import yaml

    out = _tree(tmp_path, "large", True, "kubernetes")
    cluster = next(
        d
        for d in yaml.safe_load_all((out / "kubernetes/postgres.yaml").read_text())
        if d["kind"] == "Cluster"
    )
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://schedgen-pitr/"
    assert cluster["spec"]["postgresql"]["parameters"]["archive_timeout"] == "60s"
    scheduled = [
        d
        for d in yaml.safe_load_all((out / "kubernetes/backup.yaml").read_text())
        if d and d["kind"] == "ScheduledBackup"
    ]
    assert [(s["spec"]["cluster"]["name"], s["spec"]["schedule"]) for s in scheduled] == [
        ("postgres", "0 30 2 * * *")
    ]
    from schedgen_ops.render.kube import check_kubernetes

    assert check_kubernetes(out) == []


def test_restore_needs_exactly_one_of_a_set_and_a_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from schedgen_ops.cli.main import main

    (tmp_path / "schedgen.yaml").write_text("profile: small\n")
    base = ["--project", str(tmp_path), "restore", "--yes"]
    assert main(base) == 2
    assert main([*base, "20261202T000000Z", "--to", "latest"]) == 2
    assert "exactly one" in capsys.readouterr().err
    # PITR is opt-in on small: --to says how to turn it on instead of touching anything.
    assert main([*base, "--to", "latest", "--target", "local"]) == 1
    assert "point-in-time recovery is off" in capsys.readouterr().err


def test_an_s3_repository_needs_https_and_a_ca_file_that_exists(tmp_path: Path) -> None:
    """pgBackRest 2.45 has no plain-HTTP S3: the default http MinIO would fail after minutes of retries."""
    from schedgen_ops.config.project import init_project
    from schedgen_ops.ops.backup.pgbackrest import s3_options

    init_project(tmp_path, profile="medium")
    config = load_config(tmp_path, overrides=["backup.pitr.repo=s3"], environ={})
    secrets = {"S3_ACCESS_KEY": "k", "S3_SECRET_KEY": "s"}
    with pytest.raises(SchedgenError) as info:
        s3_options(config, secrets, {})
    assert (
        info.value.code == "pitr_s3_needs_https" and "SCHEDGEN_S3_ENDPOINT_URL=https" in info.value.one_line()
    )
    https = {"SCHEDGEN_S3_ENDPOINT_URL": "https://minio.internal:9443"}
    options = s3_options(config, secrets, https)
    assert (options["endpoint"], options["port"], options["verify_tls"], options["ca_file"]) == (
        "minio.internal",
        "9443",
        "y",
        "",
    )
    with pytest.raises(SchedgenError, match="is not a file"):
        s3_options(config, secrets, {**https, "SCHEDGEN_S3_CA_FILE": str(tmp_path / "nope.pem")})
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert s3_options(config, secrets, {**https, "SCHEDGEN_S3_CA_FILE": str(ca)})["ca_file"] == str(ca)


def test_a_local_swap_whose_second_move_fails_puts_the_live_directory_back(tmp_path: Path) -> None:
    from schedgen_ops.ops.backup.pitr_restore import _swap_in

    live, incoming, previous = (
        tmp_path / "postgres",
        tmp_path / "postgres.pitr-1",
        tmp_path / "postgres.before-1",
    )
    live.mkdir()
    (live / "PG_VERSION").touch()
    with pytest.raises(OSError):
        _swap_in(live, incoming, previous)  # the recovered directory is missing
    assert (live / "PG_VERSION").is_file() and not previous.exists()
    incoming.mkdir()
    (incoming / "new").touch()
    _swap_in(live, incoming, previous)
    assert (live / "new").is_file() and (previous / "PG_VERSION").is_file() and not incoming.exists()


class _RecoveringSite:
    """A site whose server replays WAL for ``recovering`` probes, then is a primary."""

    def __init__(self, recovering: int) -> None:
        self.recovering = recovering
        self.probes = 0

    def is_primary(self) -> bool:
        self.probes += 1
        return self.probes > self.recovering


def test_enabling_waits_for_a_server_that_is_still_replaying_wal() -> None:
    from schedgen_ops.ops.backup.pitr import wait_primary

    site = _RecoveringSite(recovering=3)
    slept: list[float] = []
    wait_primary(site, timeout_s=60, sleep=slept.append)  # type: ignore[arg-type]
    assert site.probes == 4 and slept == [1.0, 1.0, 1.0]


def test_a_server_that_never_leaves_recovery_fails_with_a_hint() -> None:
    from schedgen_ops.ops.backup.pitr import wait_primary

    site = _RecoveringSite(recovering=10**9)
    with pytest.raises(SchedgenError) as raised:
        wait_primary(site, timeout_s=0, sleep=lambda _s: None)  # type: ignore[arg-type]
    assert raised.value.code == "pitr_no_primary"
    assert "pitr-enable" in (raised.value.hint or "")
