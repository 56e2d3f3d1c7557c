"""Backup integrity on disk: signed manifests, the project's key, ids that never form a stray path, and
private files (0600) and directories (0700)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.config.secrets import SECRET_NAMES, generate_secrets, load_secrets, write_env_file
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.catalog import find_backup, list_backups
from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.manifest import read_manifest
from schedgen_ops.ops.backup.prune import prune_backups
from schedgen_ops.ops.backup.remote import push_backup
from schedgen_ops.ops.backup.restore import RestoreRequest, restore_backup
from schedgen_ops.ops.backup.retention import Policy
from schedgen_ops.ops.backup.signing import KEY_ENV, KEY_NAME, MIN_KEY_CHARS, SigningKey, load_key, state_of
from schedgen_ops.ops.backup.sources import S3Settings
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.ops.backup.verify import verify_backup


def _backup(url: str, backups: Path, key: SigningKey | None, **extra: object):
    return create_backup(BackupRequest(target=LocalTarget(url), directory=backups, key=key, **extra))


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in [root, *root.rglob("*")]}


def test_sets_are_private_whatever_the_umask(ledger_url, project_dir, tmp_path, signing_key):
    backups = tmp_path / "deep" / "backups"
    old = os.umask(0)  # a umask that would leave every file world-writable
    try:
        manifest = _backup(ledger_url, backups, signing_key, project_dir=project_dir)
        verify_backup(backups, manifest.id, key=signing_key)  # rewrites the manifest
    finally:
        os.umask(old)
    modes = _modes(backups)
    assert modes.pop(".") == 0o700 and modes.pop(".lock") == 0o600
    assert modes.pop(manifest.id) == 0o700
    assert modes == {
        f"{manifest.id}/{name}": 0o600 for name in ("manifest.json", *(f.path for f in manifest.files))
    }


def test_a_tampered_manifest_is_refused_by_verify_restore_and_push(
    ledger_url, tmp_path, make_jobs, signing_key
):
    make_jobs(ledger_url, 6, completed=2)
    backups = tmp_path / "backups"
    manifest = _backup(ledger_url, backups, signing_key)
    path = backups / manifest.id / "manifest.json"
    doc = json.loads(path.read_text())
    doc["postgres"]["tables"]["public.jobs"] = 600  # a count someone wants restore to believe
    path.write_text(json.dumps(doc))
    before = path.read_bytes()

    _, result = verify_backup(backups, manifest.id, key=signing_key)

    assert result.status == "failed"
    assert [(c.name, c.ok) for c in result.checks] == [("manifest signature", False)]  # nothing else ran
    assert "does not match its signature: it was changed after schedgen wrote it" in result.checks[0].detail
    assert path.read_bytes() == before  # a manifest it cannot authenticate is not written to
    with pytest.raises(SchedgenError, match="does not match its signature") as raised:
        restore_backup(
            RestoreRequest(
                target=LocalTarget(ledger_url), directory=backups, backup_id=manifest.id, key=signing_key
            )
        )
    assert raised.value.code == "backup_tampered" and "--allow-unsigned" in (raised.value.hint or "")
    assert [e.id for e in list_backups(backups)] == [manifest.id]  # refused before the safety backup
    with pytest.raises(SchedgenError, match="refusing to ship it off-site") as raised:
        push_backup(backups, manifest.id, "s3://never-reached", S3Settings(), key=signing_key)
    assert raised.value.code == "backup_tampered"


def test_an_unsigned_set_needs_allow_unsigned_once_and_is_then_signed(
    ledger_url, tmp_path, capsys, signing_key
):
    backups = tmp_path / "backups"
    old = _backup(ledger_url, backups, None)  # as sets were written before manifests were signed
    assert old.signature is None
    verify = ["backup", "verify", old.id, "--dir", str(backups), "--database-url", ledger_url]

    assert main(verify) == 1
    err = capsys.readouterr().err
    assert "the manifest is not signed, so nothing proves this project wrote it" in err
    assert "--allow-unsigned" in err

    assert main([*verify, "--allow-unsigned"]) == 0
    assert f"warning: backup {old.id}: accepted a manifest that is unsigned" in capsys.readouterr().err
    adopted = read_manifest(backups / old.id)
    assert adopted.verified and state_of(adopted, signing_key) == "valid"
    assert main(verify) == 0  # from now on it is this project's set


def test_a_set_signed_with_another_key_names_both_keys(ledger_url, tmp_path, signing_key):
    other = SigningKey.from_text("o" * MIN_KEY_CHARS, "the other project")
    backups = tmp_path / "backups"
    manifest = _backup(ledger_url, backups, other)

    _, result = verify_backup(backups, manifest.id, key=signing_key)

    detail = result.checks[0].detail
    assert result.status == "failed" and f"key id {other.key_id}" in detail and signing_key.key_id in detail
    assert KEY_ENV in detail  # how to use the key it was made with
    _, result = verify_backup(backups, manifest.id, key=other)
    assert result.status == "passed"


def test_the_key_is_added_to_an_existing_projects_secrets_on_first_backup(
    ledger_url, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv(KEY_ENV)
    project = tmp_path / "project"
    old_values = {k: v for k, v in generate_secrets().items() if k != KEY_NAME}  # made before the key existed
    write_env_file(project / ".schedgen" / "secrets.env", old_values)
    assert load_secrets(project) == old_values  # such a project still loads (render, deploy)
    backups = tmp_path / "backups"
    common = ["--project", str(project), "backup", "--dir", str(backups), "--database-url", ledger_url]

    assert main([*common, "--json"]) == 0
    captured = capsys.readouterr()
    first = json.loads(captured.out)
    assert f"note: generated the backup signing key {KEY_NAME} in {project / '.schedgen'}" in captured.err
    values = load_secrets(project)
    assert set(values) == set(SECRET_NAMES) and {k: values[k] for k in old_values} == old_values
    assert stat.S_IMODE((project / ".schedgen" / "secrets.env").stat().st_mode) == 0o600
    key, note = load_key(project)
    assert note is None and first["signature"]["key_id"] == key.key_id
    assert main([*common, "--json"]) == 0  # the second run reuses it
    assert load_secrets(project)[KEY_NAME] == values[KEY_NAME]


def test_the_generated_key_note_and_the_key_refusals(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    key, note = load_key(tmp_path / "fresh")  # no secrets file: created as `schedgen init` would
    assert note is not None and "keep a copy with your off-site secrets" in note
    assert set(load_secrets(tmp_path / "fresh")) == set(SECRET_NAMES)
    assert load_key(tmp_path / "fresh") == (key, None)

    readable = tmp_path / "readable"
    write_env_file(readable / ".schedgen" / "secrets.env", generate_secrets())
    os.chmod(readable / ".schedgen" / "secrets.env", 0o644)
    with pytest.raises(SchedgenError, match="other users can read the backup signing key") as raised:
        load_key(readable)
    assert raised.value.hint == f"run: chmod 600 {readable / '.schedgen' / 'secrets.env'}"

    monkeypatch.setenv(KEY_ENV, "x" * (MIN_KEY_CHARS - 1))
    with pytest.raises(SchedgenError, match=f"has {MIN_KEY_CHARS - 1} characters; at least {MIN_KEY_CHARS}"):
        load_key(tmp_path / "fresh")
    monkeypatch.setenv(KEY_ENV, "x" * MIN_KEY_CHARS)
    assert load_key(tmp_path / "fresh")[0].source == f"${KEY_ENV}"


@pytest.mark.parametrize(
    "bad_id", ["../20261128T023000Z", "/etc", "20261128T023000Z/..", "latest", "x.failed"]
)
def test_ids_that_are_not_backup_ids_are_usage_errors_everywhere(tmp_path, bad_id, signing_key, capsys):
    backups = tmp_path / "backups"
    target = LocalTarget("postgresql://app@127.0.0.1:9/never-reached")
    for call in (
        lambda: find_backup(backups, bad_id),
        lambda: verify_backup(backups, bad_id, key=signing_key),
        lambda: restore_backup(
            RestoreRequest(target=target, directory=backups, backup_id=bad_id, key=signing_key)
        ),
        lambda: push_backup(backups, bad_id, "s3://never-reached", S3Settings(), key=signing_key),
    ):
        with pytest.raises(SchedgenError, match="is not a backup id") as raised:
            call()
        assert raised.value.exit_code == 2
    assert main(["backup", "verify", bad_id, "--dir", str(backups)]) == 2
    assert "is not a backup id" in capsys.readouterr().err


def test_prune_never_follows_or_removes_what_is_not_a_backup_set(ledger_url, tmp_path, signing_key):
    backups = tmp_path / "backups"
    kept = _backup(ledger_url, backups, signing_key)
    outside = tmp_path / "important"
    outside.mkdir()
    (outside / "data").write_text("keep me")
    (backups / "20200101T000000Z.failed").symlink_to(outside, target_is_directory=True)  # "debris" elsewhere
    (backups / "20200102T000000Z").symlink_to(outside, target_is_directory=True)
    (backups / "lost+found").mkdir()
    impostor = backups / "20200103T000000Z"  # a manifest copied from another set
    impostor.mkdir()
    (impostor / "manifest.json").write_bytes((backups / kept.id / "manifest.json").read_bytes())

    entries = {e.path.name: (e.state, e.problem) for e in list_backups(backups)}
    assert entries["20200101T000000Z.failed"] == ("invalid", "a symbolic link, not a backup set")
    assert entries["20200102T000000Z"] == ("invalid", "a symbolic link, not a backup set")
    assert entries["lost+found"] == ("invalid", "not a backup id")
    assert entries["20200103T000000Z"] == ("invalid", f"its manifest names backup {kept.id}")
    with pytest.raises(SchedgenError, match="is invalid: its manifest names backup"):
        verify_backup(backups, "20200103T000000Z", key=signing_key)

    result = prune_backups(backups, Policy())

    assert result.removed == [] and (outside / "data").read_text() == "keep me"
    assert sorted(p.name for p in backups.iterdir() if not p.name.startswith(".")) == sorted(entries)
