"""Damaged backup sets are detected by verify and refused by restore; the result lands in the manifest."""

from __future__ import annotations

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.manifest import read_manifest, write_manifest
from schedgen_ops.ops.backup.restore import RestoreRequest, restore_backup
from schedgen_ops.ops.backup.signing import sign
from schedgen_ops.ops.backup.streaming import file_digest
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.ops.backup.verify import verify_backup


@pytest.fixture
def backup_set(ledger_url, tmp_path, make_jobs, signing_key):
    make_jobs(ledger_url, 30, completed=10)
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(target=LocalTarget(ledger_url), directory=backups, key=signing_key)
    )
    return backups, manifest.id


def _rewrite_signed(path, manifest, key):
    """A manifest the writer itself got wrong: signed, so only the checks of the content catch it."""
    sign(manifest, key)
    write_manifest(path, manifest)


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_flipped_byte_fails_verify_and_restore_refuses(
    backup_set, ledger_url, capture_rows, capsys, signing_key
):
    backups, backup_id = backup_set
    dump = backups / backup_id / "postgres.dump"
    _flip_byte(dump, dump.stat().st_size // 2)
    before = capture_rows(ledger_url)

    code = main(["backup", "verify", backup_id, "--dir", str(backups)])

    assert code == 1
    assert "postgres.dump sha256 mismatch" in capsys.readouterr().err
    recorded = read_manifest(backups / backup_id)
    assert recorded.verification is not None and recorded.verification.status == "failed"
    assert [c.name for c in recorded.verification.checks if not c.ok] == ["checksums"]

    with pytest.raises(SchedgenError, match="failed verification, refusing to restore") as info:
        restore_backup(
            RestoreRequest(
                target=LocalTarget(ledger_url), directory=backups, backup_id=backup_id, key=signing_key
            )
        )
    assert info.value.code == "backup_failed_verification"
    assert capture_rows(ledger_url) == before
    assert [p.name for p in backups.iterdir() if not p.name.startswith(".")] == [
        backup_id
    ]  # no safety backup


def test_a_truncated_dump_is_detected_by_its_size(backup_set, signing_key):
    backups, backup_id = backup_set
    dump = backups / backup_id / "postgres.dump"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])

    _, result = verify_backup(backups, backup_id, key=signing_key)

    assert result.status == "failed"
    assert "postgres.dump size" in next(c.detail for c in result.checks if c.name == "checksums")


def test_a_dump_truncated_before_its_checksum_was_taken_is_detected_by_reading_it(backup_set, signing_key):
    """A set whose archive was cut short when written (checksums describe the short file) still fails."""
    backups, backup_id = backup_set
    path = backups / backup_id
    dump = path / "postgres.dump"
    dump.write_bytes(dump.read_bytes()[: dump.stat().st_size * 2 // 3])
    manifest = read_manifest(path)
    digest = file_digest(dump)
    entry = manifest.file("postgres")
    assert entry is not None
    entry.size, entry.sha256 = digest.size, digest.sha256
    _rewrite_signed(path, manifest, signing_key)

    _, result = verify_backup(backups, backup_id, key=signing_key)

    assert result.status == "failed"
    failed = [c for c in result.checks if not c.ok]
    assert failed and failed[0].name in ("pg_restore --list", "archive full read")


def test_a_changed_row_count_in_the_manifest_is_caught_by_the_full_read(backup_set, signing_key):
    backups, backup_id = backup_set
    manifest = read_manifest(backups / backup_id)
    assert manifest.postgres is not None
    manifest.postgres.tables["public.jobs"] += 1
    _rewrite_signed(backups / backup_id, manifest, signing_key)

    _, result = verify_backup(backups, backup_id, key=signing_key)

    assert result.status == "failed"
    assert "public.jobs: expected 31, found 30" in next(c.detail for c in result.checks if not c.ok)


def test_a_corrupt_redis_snapshot_is_detected(ledger_url, redis_url_fast, tmp_path, signing_key):
    import redis

    client = redis.Redis.from_url(redis_url_fast)
    client.mset({f"k{n}": "v" * 100 for n in range(50)})
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(target=LocalTarget(ledger_url, redis_url_fast), directory=backups, key=signing_key)
    )
    path = backups / manifest.id
    rdb = path / "redis.rdb"
    _flip_byte(rdb, rdb.stat().st_size // 2)
    entry = manifest.file("redis")
    assert entry is not None
    entry.sha256 = file_digest(rdb).sha256  # even with a matching checksum the snapshot itself is checked
    _rewrite_signed(path, manifest, signing_key)

    _, result = verify_backup(backups, manifest.id, key=signing_key)

    assert result.status == "failed"
    assert [c.name for c in result.checks if not c.ok] == ["redis snapshot"]


def test_a_missing_manifest_makes_the_set_unverifiable(backup_set, signing_key):
    backups, backup_id = backup_set
    (backups / backup_id / "manifest.json").unlink()
    with pytest.raises(SchedgenError, match=r"invalid: no manifest\.json"):
        verify_backup(backups, backup_id, key=signing_key)
