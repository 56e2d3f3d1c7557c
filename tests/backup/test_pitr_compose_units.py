"""PITR on compose without an engine: the rendered stack, the derived image's tag, the argv builders and
the shell steps of the restore (run for real here with sh, as they run inside the container)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from schedgen_ops.config import load_config
from schedgen_ops.config.secrets import generate_secrets
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.pitr_compose import (
    ComposePitrSite,
    in_fresh_dir,
    pgbackrest_argv,
    psql_argv,
    swap_dirs,
)
from schedgen_ops.ops.backup.pitr_compose_restore import restore_options
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget
from schedgen_ops.render.engine import render_files
from schedgen_ops.render.pitr import CIPHER_ENV_VAR, compose_image, is_pitr_image
from schedgen_ops.runtime.argv import ComposeProject
from schedgen_ops.runtime.imagebuild import docker_build_file
from schedgen_ops.runtime.runner import Runner


def _config(tmp_path: Path, extra: str = ""):
    (tmp_path / "schedgen.yaml").write_text(f"profile: small\nbackup: {{pitr: {{enabled: true{extra}}}}}\n")
    return load_config(tmp_path)


def test_compose_with_pitr_runs_the_derived_image_and_archives(tmp_path: Path) -> None:
    config = _config(tmp_path, ", archive_timeout_s: 45")
    secrets = generate_secrets()
    files, secret_files = render_files(config, secrets, "compose", tmp_path)
    model = yaml.safe_load(files["compose/docker-compose.yml"])
    pg = model["services"]["postgres"]
    assert pg["image"] == compose_image(config) and is_pitr_image(pg["image"])
    assert (
        "-c" in pg["command"]
        and "archive_mode=on" in pg["command"]
        and "archive_timeout=45s" in pg["command"]
    )
    push = "pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=schedgen archive-push %p"
    assert f"archive_command={push}" in pg["command"]
    assert "pgbackrest:/var/lib/pgbackrest" in pg["volumes"] and "pgbackrest" in model["volumes"]
    assert pg["env_file"] == ["secrets/postgres.env", "secrets/pgbackrest.env"]
    # postgres-init keeps the plain image: it only needs psql.
    assert model["services"]["postgres-init"]["image"] == config.postgres.image
    # The cipher pass is only in the 0600 secret file, never in the rendered (world-readable) tree.
    cipher = secrets["PGBACKREST_CIPHER_PASS"]
    assert secret_files["compose/secrets/pgbackrest.env"] == f"{CIPHER_ENV_VAR}={cipher}\n"
    assert not [name for name, text in files.items() if cipher in text]
    conf = files["compose/pgbackrest/pgbackrest.conf"]
    assert "repo1-cipher-type=aes-256-cbc" in conf and "repo1-cipher-pass" not in conf
    assert "pg1-path=/var/lib/postgresql/data/pgdata" in conf and "lock-path=/tmp/pgbackrest" in conf


def test_compose_without_pitr_renders_the_plain_image_and_no_repository(tmp_path: Path) -> None:
    (tmp_path / "schedgen.yaml").write_text("profile: small\n")
    config = load_config(tmp_path)
    files, secret_files = render_files(config, generate_secrets(), "compose", tmp_path)
    pg = yaml.safe_load(files["compose/docker-compose.yml"])["services"]["postgres"]
    assert pg["image"] == config.postgres.image and pg["env_file"] == ["secrets/postgres.env"]
    assert "compose/pgbackrest/pgbackrest.conf" not in files
    assert "compose/secrets/pgbackrest.env" not in secret_files


def test_the_derived_tag_follows_the_base_image(tmp_path: Path) -> None:
    one = compose_image(_config(tmp_path))
    (tmp_path / "schedgen.yaml").write_text(
        "profile: small\npostgres: {image: 'postgres:16.5-alpine'}\nbackup: {pitr: {enabled: true}}\n"
    )
    two = compose_image(load_config(tmp_path))
    assert one != two and one.rpartition(":")[0] == two.rpartition(":")[0] == "schedgen/postgres-pgbackrest"
    assert not is_pitr_image("postgres:16.4-alpine") and not is_pitr_image("schedgen/service:0.1.0")


def test_a_missing_cipher_pass_and_an_s3_repository_are_refused_with_a_fix(tmp_path: Path) -> None:
    config = _config(tmp_path)
    secrets = {k: v for k, v in generate_secrets().items() if k != "PGBACKREST_CIPHER_PASS"}
    with pytest.raises(SchedgenError, match="PGBACKREST_CIPHER_PASS") as caught:
        render_files(config, secrets, "compose", tmp_path)
    assert "secrets rotate PGBACKREST_CIPHER_PASS" in (caught.value.hint or "")
    with pytest.raises(SchedgenError, match="repo=s3 is not supported on compose"):
        render_files(_config(tmp_path, ", repo: s3"), generate_secrets(), "compose", tmp_path)


def test_argv_builders(tmp_path: Path) -> None:
    assert pgbackrest_argv("sg", "backup", "--type=full") == [
        "pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=sg", "--type=full", "backup",
    ]  # fmt: skip
    assert psql_argv("SELECT 1", "db")[-4:] == ["-d", "db", "-tAc", "SELECT 1"]
    project = ComposeProject("p", (Path("/t/docker-compose.yml"),))
    site = ComposePitrSite.for_compose(_config(tmp_path), project, Runner())
    assert site.argv("info")[:8] == [
        "docker",
        "compose",
        "-p",
        "p",
        "-f",
        "/t/docker-compose.yml",
        "exec",
        "-T",
    ]
    site.offline = True
    assert site.argv("info")[6:11] == ["run", "--rm", "--no-deps", "-T", "postgres"]
    assert docker_build_file(Path("/ctx"), Path("/ctx/Dockerfile"), "r/x:1", base_image="b:2") == [
        "docker", "build", "--pull=false", "--file", "/ctx/Dockerfile", "--build-arg", "BASE_IMAGE=b:2",
        "--tag", "r/x:1", "/ctx",
    ]  # fmt: skip


def test_restore_options_pin_restore_command_to_the_live_path() -> None:
    at = RecoveryTarget.parse("2026-12-02T02:29:00Z")
    options = restore_options("sg", "/d/pgdata.pitr-1", at, recover_in="/d/pgdata")
    assert options[0] == "--pg1-path=/d/pgdata.pitr-1"
    assert "--type=time" in options and "--target-action=promote" in options
    assert options[-1] == (
        "--recovery-option=restore_command=pgbackrest --config=/etc/pgbackrest/pgbackrest.conf "
        '--stanza=sg --pg1-path=/d/pgdata archive-get %f "%p"'
    )
    latest = restore_options("sg", "/x", RecoveryTarget.parse("latest"), recover_in="/x")
    assert latest[1] == "--type=default"


def test_the_swap_and_fresh_directory_steps_in_a_real_shell(tmp_path: Path) -> None:
    live, incoming, previous = (str(tmp_path / n) for n in ("pgdata", "pgdata.pitr-1", "pgdata.before-1"))
    subprocess.run([*in_fresh_dir(incoming, ["touch", f"{incoming}/PG_VERSION"])], check=True)
    assert (Path(incoming).stat().st_mode & 0o777) == 0o700 and Path(incoming, "PG_VERSION").is_file()
    # A restore target that already exists is an error, never a merge into it.
    assert subprocess.run(in_fresh_dir(incoming, ["true"]), capture_output=True).returncode != 0
    # Disk lost: no live directory; the restored one moves in.
    subprocess.run(swap_dirs(live, incoming, previous), check=True)
    assert Path(live, "PG_VERSION").is_file() and not Path(previous).exists()
    # Live data present: kept as the previous directory.
    subprocess.run([*in_fresh_dir(incoming, ["touch", f"{incoming}/new"])], check=True)
    subprocess.run(swap_dirs(live, incoming, previous), check=True)
    assert Path(live, "new").is_file() and Path(previous, "PG_VERSION").is_file()
    assert not Path(incoming).exists()


def test_a_swap_whose_second_move_fails_puts_the_live_directory_back(tmp_path: Path) -> None:
    live, incoming, previous = (str(tmp_path / n) for n in ("pgdata", "pgdata.pitr-2", "pgdata.before-2"))
    Path(live).mkdir()
    Path(live, "PG_VERSION").touch()
    # The restored directory is missing (a failed or removed restore): the move in fails.
    done = subprocess.run(swap_dirs(live, incoming, previous), capture_output=True)
    assert done.returncode != 0
    assert Path(live, "PG_VERSION").is_file() and not Path(previous).exists()
