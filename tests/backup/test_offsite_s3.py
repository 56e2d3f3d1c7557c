"""push/pull against a real S3 API (moto's server mode, started here), and s3:// upload storage."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil

import pytest

from schedgen_ops.cli.main import main
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.manifest import FileEntry, Manifest, read_manifest
from schedgen_ops.ops.backup.remote import pull_backup, push_backup
from schedgen_ops.ops.backup.signing import KEY_ENV, SigningKey
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


def test_push_then_pull_gives_an_identical_verified_set(ledger_url, tmp_path, make_jobs, s3, signing_key):
    make_jobs(ledger_url, 8, completed=3)
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(target=LocalTarget(ledger_url), directory=backups, key=signing_key)
    )
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
    pulled = pull_backup(elsewhere, manifest.id, "s3://offsite/site-a", s3, key=signing_key)
    assert pulled.files == manifest.files and pulled.signature == manifest.signature
    for item in manifest.files:
        assert (elsewhere / manifest.id / item.path).read_bytes() == (
            backups / manifest.id / item.path
        ).read_bytes()
    _, result = verify_backup(elsewhere, manifest.id, key=signing_key)
    assert result.status == "passed"
    modes = {p.name: p.stat().st_mode & 0o777 for p in (elsewhere / manifest.id).iterdir()}
    assert modes == dict.fromkeys(modes, 0o600) and len(modes) == len(manifest.files) + 1
    assert (elsewhere / manifest.id).stat().st_mode & 0o777 == 0o700


def test_pull_refuses_a_damaged_remote_copy(ledger_url, tmp_path, s3, signing_key):
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(target=LocalTarget(ledger_url), directory=backups, key=signing_key)
    )
    client = _bucket(s3, "offsite-damaged")
    push_backup(backups, manifest.id, "s3://offsite-damaged", s3, key=signing_key)
    client.put_object(Bucket="offsite-damaged", Key=f"{manifest.id}/postgres.dump", Body=b"not a dump")

    target = tmp_path / "elsewhere"
    with pytest.raises(SchedgenError, match="does not match its checksum"):
        pull_backup(target, manifest.id, "s3://offsite-damaged", s3, key=signing_key)
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == []


def test_push_refuses_a_set_that_failed_verification(ledger_url, tmp_path, s3, signing_key):
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(target=LocalTarget(ledger_url), directory=backups, key=signing_key)
    )
    dump = backups / manifest.id / "postgres.dump"
    dump.write_bytes(dump.read_bytes()[:-10])
    verify_backup(backups, manifest.id, key=signing_key)
    _bucket(s3, "offsite-refused")
    with pytest.raises(SchedgenError, match="failed verification; refusing to ship it"):
        push_backup(backups, manifest.id, "s3://offsite-refused", s3, key=signing_key)


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


# ------------------------------------------------------------------ hostile and forged manifests on pull
# Anyone who can write to the bucket controls what `pull` downloads first: the manifest. These run
# against moto's S3 server (`s3_endpoint`), so every byte goes through a real S3 API.


def _push(ledger_url, tmp_path, s3, key, bucket):
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(ledger_url), directory=backups, key=key))
    client = _bucket(s3, bucket)
    push_backup(backups, manifest.id, f"s3://{bucket}", s3, key=key)
    doc = json.loads((backups / manifest.id / "manifest.json").read_text())
    return client, manifest, doc


def _hmac(doc: dict, key: SigningKey) -> str:
    """The signature schedgen would compute for ``doc`` (also for content its model refuses)."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hmac.new(key.secret, text, hashlib.sha256).hexdigest()


def _nothing_landed(tmp_path, target):
    written = [p for p in tmp_path.rglob("*") if p.is_file() and b"payload" in p.read_bytes()]
    assert written == [] and not (tmp_path / "schedgen-pwned").exists()
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "hostile_path",
    ["/tmp/schedgen-pwned", "../../schedgen-pwned", "postgres.dump/../../x", "sub/postgres.dump", ".bashrc"],
)
def test_pull_refuses_a_manifest_whose_paths_leave_the_set(
    ledger_url, tmp_path, s3, hostile_path, signing_key
):
    client, manifest, doc = _push(ledger_url, tmp_path, s3, signing_key, "offsite-hostile")
    doc["files"][0]["path"] = hostile_path
    client.put_object(Bucket="offsite-hostile", Key=f"{manifest.id}/manifest.json", Body=json.dumps(doc))
    client.put_object(Bucket="offsite-hostile", Key=f"{manifest.id}/{hostile_path}", Body=b"payload")

    target = tmp_path / "elsewhere" / "backups"
    with pytest.raises(SchedgenError, match="is not one schedgen wrote") as raised:
        pull_backup(target, manifest.id, "s3://offsite-hostile", s3, key=signing_key)
    assert raised.value.code == "backup_manifest_invalid"
    _nothing_landed(tmp_path, target)


def test_a_traversal_path_is_refused_even_when_signed_with_the_projects_key(tmp_path, s3, signing_key):
    """Defence in depth: the file-name rule holds whoever signed (a leaked key, a buggy writer)."""
    backup_id = "20261128T023000Z"
    forged = Manifest(
        id=backup_id,
        status="complete",
        target="local",
        started_at="2026-11-28T02:30:00Z",
        files=[
            FileEntry(
                path="postgres.dump", kind="postgres", size=7, sha256=hashlib.sha256(b"payload").hexdigest()
            )
        ],
    ).model_dump(mode="json")
    forged["files"][0]["path"] = "../../schedgen-pwned"
    forged["signature"] = {
        "alg": "hmac-sha256",
        "key_id": signing_key.key_id,
        "value": _hmac(forged, signing_key),
    }
    client = _bucket(s3, "offsite-signed-hostile")
    client.put_object(
        Bucket="offsite-signed-hostile", Key=f"{backup_id}/manifest.json", Body=json.dumps(forged)
    )
    client.put_object(
        Bucket="offsite-signed-hostile", Key=f"{backup_id}/../../schedgen-pwned", Body=b"payload"
    )

    target = tmp_path / "elsewhere" / "backups"
    refused = re.escape("'../../schedgen-pwned' is not a backup set file")
    for allow_unsigned in (False, True):
        with pytest.raises(SchedgenError, match=refused) as raised:
            pull_backup(
                target,
                backup_id,
                "s3://offsite-signed-hostile",
                s3,
                key=signing_key,
                allow_unsigned=allow_unsigned,
            )
        assert raised.value.code == "backup_manifest_invalid"
    _nothing_landed(tmp_path, target)


def test_pull_refuses_forged_manifests_before_downloading_anything(ledger_url, tmp_path, s3, signing_key):
    """Forgeries the checksums alone cannot catch: the attacker rewrites them to match their own files."""
    client, manifest, doc = _push(ledger_url, tmp_path, s3, signing_key, "offsite-forged")
    key_name = f"{manifest.id}/manifest.json"
    payload = b"payload: not the dump schedgen wrote"

    swapped = json.loads(json.dumps(doc))  # their dump, with the checksum and size to match
    dump = next(f for f in swapped["files"] if f["path"] == "postgres.dump")
    dump["size"], dump["sha256"] = len(payload), hashlib.sha256(payload).hexdigest()
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    passed = json.loads(json.dumps(doc))  # a verification that never happened
    passed["verification"] = {
        "status": "passed",
        "level": "deep",
        "verified_at": "2026-11-28T03:00:00Z",
        "duration_s": 1.0,
    }
    target = tmp_path / "elsewhere" / "backups"
    for forged, code, message in [
        (swapped, "backup_tampered", "does not match its signature: it was changed after schedgen wrote it"),
        (unsigned, "backup_unsigned", "the manifest is not signed"),
        (passed, "backup_tampered", "does not match its signature"),
    ]:
        client.put_object(Bucket="offsite-forged", Key=key_name, Body=json.dumps(forged))
        client.put_object(Bucket="offsite-forged", Key=f"{manifest.id}/postgres.dump", Body=payload)
        with pytest.raises(SchedgenError, match=message) as raised:
            pull_backup(target, manifest.id, "s3://offsite-forged", s3, key=signing_key)
        assert raised.value.code == code and "--allow-unsigned" in (raised.value.hint or "")
        _nothing_landed(tmp_path, target)


def test_a_set_signed_by_another_project_needs_its_key_or_allow_unsigned(ledger_url, tmp_path, s3, capsys):
    other = SigningKey.from_text("another-project-" + "x" * 32, "the other project")
    ours = SigningKey.from_text(os.environ[KEY_ENV], "this project")
    _, manifest, _ = _push(ledger_url, tmp_path, s3, other, "offsite-foreign")
    target = tmp_path / "elsewhere"
    pull = [
        "backup",
        "pull",
        manifest.id,
        "s3://offsite-foreign",
        "--dir",
        str(target),
        "--endpoint-url",
        s3.endpoint_url,
    ]

    assert main(pull) == 1
    err = capsys.readouterr().err
    assert f"signed with another key (key id {other.key_id}" in err and f"has key id {ours.key_id}" in err
    assert "SCHEDGEN_BACKUP_HMAC_KEY" in err and "--allow-unsigned" in err
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == []

    assert main([*pull, "--allow-unsigned"]) == 0  # the operator vouches for it: adopted, signed with ours
    assert (
        "warning: backup " + manifest.id + ": accepted a manifest that is foreign" in capsys.readouterr().err
    )
    adopted = read_manifest(target / manifest.id)
    assert adopted.signature is not None and adopted.signature.key_id == ours.key_id
    _, result = verify_backup(target, manifest.id, key=ours)
    assert result.status == "passed"


@pytest.mark.parametrize("bad_id", ["../20261128T023000Z", "/etc", "20261128T023000Z/../../x", ""])
def test_pull_refuses_an_id_that_is_not_a_backup_id(tmp_path, s3, bad_id, signing_key):
    with pytest.raises(SchedgenError, match="is not a backup id") as raised:
        pull_backup(tmp_path / "backups", bad_id, "s3://anything", s3, key=signing_key)
    assert raised.value.exit_code == 2
    assert not (tmp_path / "backups").exists() or list((tmp_path / "backups").iterdir()) == []


def test_pull_refuses_a_manifest_that_names_another_backup(ledger_url, tmp_path, s3, signing_key):
    client, manifest, doc = _push(ledger_url, tmp_path, s3, signing_key, "offsite-renamed")
    doc["id"] = "20200101T000000Z"
    client.put_object(Bucket="offsite-renamed", Key=f"{manifest.id}/manifest.json", Body=json.dumps(doc))
    with pytest.raises(SchedgenError, match="names backup '20200101T000000Z'"):
        pull_backup(tmp_path / "elsewhere", manifest.id, "s3://offsite-renamed", s3, key=signing_key)
