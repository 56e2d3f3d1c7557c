"""Back up the real service ledger, damage the data, restore, and get the original back row for row."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import psycopg
import pytest
import redis

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.catalog import list_backups
from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.manifest import read_manifest
from schedgen_ops.ops.backup.restore import RestoreRequest, restore_backup
from schedgen_ops.ops.backup.signing import SigningKey
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.ops.backup.verify import verify_backup
from schedgen_ops.service.storage import FileStorage


def test_backup_damage_restore_gives_the_original_back(
    ledger_url, redis_url_fast, project_dir, tmp_path, make_jobs, capture_rows, signing_key, postgres_server
):
    storage_root = tmp_path / "uploads"
    storage = FileStorage(storage_root)
    make_jobs(ledger_url, 40, completed=15, storage=storage)
    queue = redis.Redis.from_url(redis_url_fast)
    queue.rpush("rq:queue:default", *[f"job-{n}" for n in range(5)])
    queue.set("rq:job:expiring", "x", ex=3600)
    original = capture_rows(ledger_url)
    uploads_before = {p.name: p.read_bytes() for p in storage_root.rglob("*") if p.is_file()}
    assert len(uploads_before) == 25

    target = LocalTarget(ledger_url, redis_url_fast)
    backups = tmp_path / "backups"
    request = BackupRequest(
        target=target,
        directory=backups,
        project_dir=project_dir,
        profile="small",
        storage_url=f"file://{storage_root}",
        key=signing_key,
    )
    manifest = create_backup(request)

    # The set: complete, renamed from .partial, every file described, counts from the archive.
    assert [e.path.name for e in list_backups(backups)] == [manifest.id]
    assert manifest.status == "complete"
    assert {f.kind for f in manifest.files} == {"postgres", "postgres-globals", "redis", "uploads", "config"}
    assert manifest.postgres is not None
    assert manifest.postgres.tables == {
        "public.api_keys": 0,
        "public.backup_ledger": 0,
        "public.jobs": 40,
        "public.results": 15,
        "public.schema_migrations": len(original["public.schema_migrations"]),
        "public.subscriptions": 0,
    }
    assert manifest.redis is not None and manifest.redis.keys == 2
    assert manifest.uploads is not None and manifest.uploads.objects == 25
    assert manifest.config is not None and not manifest.config.secrets_included
    with tarfile.open(backups / manifest.id / "config.tar") as tar:
        names = tar.getnames()
    assert names == ["schedgen.yaml", "deploy/compose/compose.yaml"]  # stack.env and secrets.env left out
    globals_sql = (backups / manifest.id / "postgres-globals.sql").read_text()
    assert "CREATE ROLE postgres" in globals_sql and "PASSWORD" not in globals_sql
    on_disk = json.loads((backups / manifest.id / "manifest.json").read_text())
    assert on_disk["files"][0]["sha256"] == manifest.files[0].sha256

    # Damage: delete, change and add rows; lose Redis; lose upload objects.
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs ORDER BY id LIMIT 12)")
        conn.execute(
            "UPDATE jobs SET status = 'failed', error_message = 'oops', expires_at = now()"
            " WHERE status = 'queued'"
        )
        conn.execute("UPDATE results SET timetable = '{}'::jsonb")
        conn.execute("INSERT INTO api_keys (id, name, key_hash) VALUES ('k1', 'late', 'h')")
    queue.flushall()
    for path in list(storage_root.rglob("*.pdf"))[:10]:
        path.unlink()
    assert capture_rows(ledger_url) != original

    report = restore_backup(
        RestoreRequest(
            target=target,
            directory=backups,
            backup_id=manifest.id,
            key=signing_key,
            redis_url=redis_url_fast,
            storage_url=f"file://{storage_root}",
            safety_request=BackupRequest(target=target, directory=backups, key=signing_key),
        )
    )

    assert capture_rows(ledger_url) == original
    assert sorted(queue.lrange("rq:queue:default", 0, -1)) == [f"job-{n}".encode() for n in range(5)]
    assert 0 < queue.ttl("rq:job:expiring") <= 3600
    assert {p.name: p.read_bytes() for p in storage_root.rglob("*") if p.is_file()} == uploads_before
    assert report.redis_keys == 2 and report.upload_objects == 25
    assert all(check["ok"] for check in report.checks)
    # A superuser may create and rename databases: the default restore is a swap, restored and checked
    # before the writers stop, then renamed in.
    assert report.mode == "swap" and report.previous_database is not None
    assert [e["event"] for e in report.timeline] == [
        "verify",
        "safety backup",
        "restore postgres",
        "postgres restored",
        "checks",
        "stop writers",
        "swap",
        "start writers",
    ]
    # The safety backup holds the damaged state, so the restore itself can be undone.
    safety = read_manifest(backups / str(report.safety_backup_id))
    assert safety.reason == f"pre-restore of {manifest.id}"
    assert safety.postgres is not None and safety.postgres.tables["public.jobs"] == 28
    assert safety.postgres.tables["public.api_keys"] == 1
    assert read_manifest(backups / manifest.id).verified
    # The restored backup_ledger (empty when the set was taken) is re-recorded from the directory: the
    # restored set (with the verification the restore ran) and the safety backup.
    assert report.ledger_warning is None
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        recorded = dict(conn.execute("SELECT backup_id, verify_status FROM backup_ledger").fetchall())
    assert recorded == {manifest.id: "passed", str(report.safety_backup_id): None}
    postgres_server.drop_database(report.previous_database)


def test_swap_mode_restores_into_a_new_database_and_keeps_the_old(
    ledger_url, postgres_server, tmp_path, make_jobs, capture_rows, signing_key
):
    make_jobs(ledger_url, 12, completed=4)
    original = capture_rows(ledger_url)
    target = LocalTarget(ledger_url)
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=target, directory=backups, key=signing_key))
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs CASCADE")
        conn.execute("CREATE TABLE created_after_backup (x int)")

    report = restore_backup(
        RestoreRequest(
            target=target,
            directory=backups,
            backup_id=manifest.id,
            key=signing_key,
            mode="swap",
            safety_backup=False,
        )
    )

    assert capture_rows(ledger_url) == original
    with psycopg.connect(ledger_url) as conn:  # a swap gives exactly the backed-up schema back
        assert conn.execute("SELECT to_regclass('created_after_backup')").fetchone() == (None,)
    assert report.previous_database is not None
    previous = postgres_server.url_for(report.previous_database)
    with psycopg.connect(previous) as conn:
        assert conn.execute("SELECT count(*) FROM jobs").fetchone() == (0,)
    postgres_server.drop_database(report.previous_database)


def test_deep_verify_restores_into_scratch_and_records_the_result(
    ledger_url, postgres_server, tmp_path, make_jobs, signing_key
):
    make_jobs(ledger_url, 10, completed=3)
    target = LocalTarget(ledger_url)
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=target, directory=backups, key=signing_key))

    entry, result = verify_backup(backups, None, key=signing_key, deep=True, target=target)

    assert entry.id == manifest.id
    assert result.status == "passed" and result.level == "deep"
    names = [c.name for c in result.checks]
    assert names[-1] == "deep: restore into a scratch database" and "counts equal" in result.checks[-1].detail
    recorded = read_manifest(backups / manifest.id)
    assert recorded.verification == result
    with psycopg.connect(postgres_server.url) as conn:
        leftovers = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'schedgen_verify_%'"
        ).fetchall()
    assert leftovers == []


def test_a_failing_dump_is_never_a_backup(postgres_server, tmp_path):
    target = LocalTarget(postgres_server.url_for("no_such_database"))
    backups = tmp_path / "backups"
    with pytest.raises(SchedgenError, match="no_such_database"):
        create_backup(BackupRequest(target=target, directory=backups))
    (entry,) = list_backups(backups)
    assert entry.state == "failed" and entry.manifest is not None and entry.manifest.status == "failed"


def test_pg_dump_failure_mid_run_marks_the_set_failed(ledger_url, tmp_path):
    class BrokenDump(LocalTarget):
        def pg_dump(self):  # a real pg_dump that exits non-zero after writing some output
            command = super().pg_dump()
            command.argv.append("--table=no_such_table_anywhere")
            return command

    backups = tmp_path / "backups"
    with pytest.raises(SchedgenError, match="pg_dump failed: pg_dump exited with code 1"):
        create_backup(BackupRequest(target=BrokenDump(ledger_url), directory=backups))
    (entry,) = list_backups(backups)
    assert entry.state == "failed" and entry.path.name.endswith(".failed")
    assert entry.manifest is not None and entry.manifest.status == "failed"
    assert "no matching tables were found" in (entry.manifest.error or "")
    with pytest.raises(SchedgenError, match="no complete backup"):
        verify_backup(backups, None, key=SigningKey.from_text("k" * 32, "test"))


def test_include_secrets_archives_them_and_warns(ledger_url, project_dir, tmp_path, capsys):
    from rich.console import Console

    from schedgen_ops.ops.backup.progress import Reporter

    backups = tmp_path / "backups"
    reporter = Reporter(Console(stderr=True, force_terminal=False))
    manifest = create_backup(
        BackupRequest(
            target=LocalTarget(ledger_url), directory=backups, project_dir=project_dir, include_secrets=True
        ),
        reporter,
    )
    assert manifest.config is not None and manifest.config.secrets_included
    with tarfile.open(backups / manifest.id / "config.tar") as tar:
        assert ".schedgen/secrets.env" in tar.getnames()
        assert "deploy/compose/stack.env" in tar.getnames()
    err = capsys.readouterr().err
    assert "warning: --include-secrets" in err
    assert "postgres: pg_dump -Fc:" in err  # plain progress lines when not on a terminal


def test_streamed_commands_fail_on_any_nonzero_exit(tmp_path: Path):
    from schedgen_ops.ops.backup.streaming import stream_to_file

    dest = tmp_path / "out"
    with pytest.raises(SchedgenError, match="exited with code 3: boom"):
        stream_to_file(["sh", "-c", "echo partial output; echo boom >&2; exit 3"], dest, what="dump")
    assert dest.read_bytes() == b"partial output\n"  # written, but reported as a failure, never masked
