"""push/pull against a real S3 API (moto's server mode, started here), and s3:// upload storage."""

from __future__ import annotations

import shutil

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.remote import pull_backup, push_backup
from schedgen_ops.ops.backup.sources import S3Settings, restore_uploads
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.ops.backup.verify import verify_backup


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> S3Settings:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return S3Settings(endpoint_url=s3_endpoint, access_key="testing", secret_key="testing")


def _bucket(s3: S3Settings, name: str):
    client = s3.client()
    client.create_bucket(Bucket=name)
    return client


def test_push_then_pull_gives_an_identical_verified_set(ledger_url, tmp_path, make_jobs, s3, capsys):
    make_jobs(ledger_url, 8, completed=3)
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(ledger_url), directory=backups))
    client = _bucket(s3, "offsite")

    assert (
        main(
            [
                "backup",
                "push",
                manifest.id,
                "s3://offsite/site-a",
                "--dir",
                str(backups),
                "--endpoint-url",
                s3.endpoint_url,
            ]
        )
        == 0
    )
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="offsite")["Contents"])
    expected = [f"site-a/{manifest.id}/{f.path}" for f in manifest.files]
    assert keys == sorted([*expected, f"site-a/{manifest.id}/manifest.json"])

    elsewhere = tmp_path / "restored-site"
    pulled = pull_backup(elsewhere, manifest.id, "s3://offsite/site-a", s3)
    assert pulled.files == manifest.files
    for item in manifest.files:
        assert (elsewhere / manifest.id / item.path).read_bytes() == (
            backups / manifest.id / item.path
        ).read_bytes()
    _, result = verify_backup(elsewhere, manifest.id)
    assert result.status == "passed"


def test_pull_refuses_a_damaged_remote_copy(ledger_url, tmp_path, s3):
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(ledger_url), directory=backups))
    client = _bucket(s3, "offsite-damaged")
    push_backup(backups, manifest.id, "s3://offsite-damaged", s3)
    client.put_object(Bucket="offsite-damaged", Key=f"{manifest.id}/postgres.dump", Body=b"not a dump")

    target = tmp_path / "elsewhere"
    with pytest.raises(SchedgenError, match="does not match its checksum"):
        pull_backup(target, manifest.id, "s3://offsite-damaged", s3)
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == []


def test_push_refuses_a_set_that_failed_verification(ledger_url, tmp_path, s3):
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(ledger_url), directory=backups))
    dump = backups / manifest.id / "postgres.dump"
    dump.write_bytes(dump.read_bytes()[:-10])
    verify_backup(backups, manifest.id)
    _bucket(s3, "offsite-refused")
    with pytest.raises(SchedgenError, match="failed verification; refusing to ship it"):
        push_backup(backups, manifest.id, "s3://offsite-refused", s3)


def test_s3_upload_storage_is_backed_up_and_restored(ledger_url, tmp_path, s3):
    client = _bucket(s3, "uploads")
    for n in range(6):
        client.put_object(Bucket="uploads", Key=f"pending/job{n}.pdf", Body=f"%PDF {n}".encode())
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(
            target=LocalTarget(ledger_url), directory=backups, storage_url="s3://uploads/pending", s3=s3
        )
    )
    assert manifest.uploads is not None and (manifest.uploads.objects, manifest.uploads.bytes) == (6, 36)
    for n in range(6):
        client.delete_object(Bucket="uploads", Key=f"pending/job{n}.pdf")

    assert restore_uploads(backups / manifest.id / "uploads.tar", "s3://uploads/pending", s3) == 6
    body = client.get_object(Bucket="uploads", Key="pending/job4.pdf")["Body"].read()
    assert body == b"%PDF 4"
    shutil.rmtree(backups)


@pytest.mark.parametrize(
    "hostile_path",
    ["/tmp/schedgen-pwned", "../../schedgen-pwned", "postgres.dump/../../x", "sub/postgres.dump", ".bashrc"],
)
def test_pull_refuses_a_manifest_whose_paths_leave_the_set(ledger_url, tmp_path, s3, hostile_path):
    """Anyone who can write to the bucket controls the manifest: its paths must never be followed."""
    import json

    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(ledger_url), directory=backups))
    client = _bucket(s3, "offsite-hostile")
    push_backup(backups, manifest.id, "s3://offsite-hostile", s3)
    doc = json.loads((backups / manifest.id / "manifest.json").read_text())
    doc["files"][0]["path"] = hostile_path
    client.put_object(Bucket="offsite-hostile", Key=f"{manifest.id}/manifest.json", Body=json.dumps(doc))
    client.put_object(Bucket="offsite-hostile", Key=f"{manifest.id}/{hostile_path}", Body=b"payload")

    target = tmp_path / "elsewhere" / "backups"
    with pytest.raises(SchedgenError, match="is not one schedgen wrote") as raised:
        pull_backup(target, manifest.id, "s3://offsite-hostile", s3)
    assert raised.value.code == "backup_manifest_invalid"
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes() == b"payload"]
    assert written == [] and not (tmp_path / "schedgen-pwned").exists()
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.parametrize("bad_id", ["../20261128T023000Z", "/etc", "20261128T023000Z/../../x", ""])
def test_pull_refuses_an_id_that_is_not_a_backup_id(tmp_path, s3, bad_id):
    with pytest.raises(SchedgenError, match="is not a backup id") as raised:
        pull_backup(tmp_path / "backups", bad_id, "s3://anything", s3)
    assert raised.value.exit_code == 2
    assert not (tmp_path / "backups").exists() or list((tmp_path / "backups").iterdir()) == []


def test_pull_refuses_a_manifest_that_names_another_backup(ledger_url, tmp_path, s3):
    import json

    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(ledger_url), directory=backups))
    client = _bucket(s3, "offsite-renamed")
    push_backup(backups, manifest.id, "s3://offsite-renamed", s3)
    doc = json.loads((backups / manifest.id / "manifest.json").read_text())
    doc["id"] = "20200101T000000Z"
    client.put_object(Bucket="offsite-renamed", Key=f"{manifest.id}/manifest.json", Body=json.dumps(doc))
    with pytest.raises(SchedgenError, match="names backup '20200101T000000Z'"):
        pull_backup(tmp_path / "elsewhere", manifest.id, "s3://offsite-renamed", s3)
