"""Compose and Kubernetes backups/restores at the argv level (no Docker engine or cluster here)."""

from __future__ import annotations

from pathlib import Path

from schedgen_ops.ops.backup.targets import ComposeTarget, KubernetesTarget, LocalTarget
from schedgen_ops.ops.backup.tools import PgTools
from schedgen_ops.ops.backup.writers import (
    compose_start_argv,
    compose_stop_argv,
    kube_pause_keda_argv,
    kube_replicas_argv,
    kube_scale_argv,
)
from schedgen_ops.runtime.argv import ComposeProject, KubeTarget

PROJECT = ComposeProject("schedgen", (Path("deploy/compose/docker-compose.yml"),))
PREFIX = ["docker", "compose", "-p", "schedgen", "-f", "deploy/compose/docker-compose.yml"]


def test_compose_dump_streams_out_of_the_container():
    target = ComposeTarget(project=PROJECT)
    assert target.pg_dump().argv == [
        *PREFIX,
        "exec",
        "-T",
        "--index",
        "1",
        "postgres",
        "pg_dump",
        "--format=custom",
        "--no-password",
        "--username=schedgen",
        "--dbname=schedgen",
    ]
    assert target.pg_dumpall_globals(role_passwords=False).argv[len(PREFIX) + 5 :] == [
        "pg_dumpall",
        "--globals-only",
        "--no-password",
        "--username=schedgen",
        "--no-role-passwords",
    ]
    assert "--no-role-passwords" not in target.pg_dumpall_globals(role_passwords=True).argv
    rdb = target.redis_rdb()
    assert rdb is not None
    assert rdb.argv == [
        *PREFIX,
        "exec",
        "-T",
        "--index",
        "1",
        "redis",
        "redis-cli",
        "--no-auth-warning",
        "--rdb",
        "-",
    ]


def test_compose_restore_reads_the_archive_on_stdin_with_one_job():
    target = ComposeTarget(project=PROJECT)
    assert target.restore_from_stdin
    command = target.pg_restore(Path("/backups/x/postgres.dump"), jobs=4, clean=True)
    assert command.argv == [
        *PREFIX,
        "exec",
        "-T",
        "--index",
        "1",
        "postgres",
        "pg_restore",
        "--no-password",
        "--exit-on-error",
        "--username=schedgen",
        "--dbname=schedgen",
        "--clean",
        "--if-exists",
        "--single-transaction",  # in place: all or nothing, a failed restore rolls back
    ]
    scratch = target.pg_restore(Path("x"), jobs=1, clean=False, dbname="schedgen_verify_1")
    assert scratch.argv[-1] == "--dbname=schedgen_verify_1"


def test_local_restore_in_place_is_one_transaction_and_into_a_new_database_parallel():
    target = LocalTarget("postgresql://app@db.internal:5433/ledger")
    target._tools = PgTools(15, Path("/usr/lib/postgresql/15/bin"))
    clean = target.pg_restore(Path("/b/postgres.dump"), jobs=4, clean=True)
    assert clean.argv[1:-2] == [
        "--no-password",
        "--exit-on-error",
        "--clean",
        "--if-exists",
        "--single-transaction",
    ]
    assert clean.argv[-1] == "/b/postgres.dump" and "dbname=ledger" in clean.argv[-2]
    fresh = target.pg_restore(Path("/b/postgres.dump"), jobs=4, clean=False, dbname="ledger_restore_1")
    assert fresh.argv[1:4] == ["--no-password", "--exit-on-error", "--jobs=4"]
    assert "dbname=ledger_restore_1" in fresh.argv[-2] and "--clean" not in fresh.argv


def test_kubernetes_exec_uses_stdin_only_for_restore():
    target = KubernetesTarget(kube=KubeTarget("prod", context="cluster-a"))
    prefix = ["kubectl", "--context", "cluster-a", "--namespace", "prod", "exec"]
    assert target.pg_dump().argv[:9] == [*prefix, "statefulset/postgres", "--", "pg_dump"]
    assert target.pg_restore(Path("x"), jobs=2, clean=True).argv[:10] == [
        *prefix,
        "-i",
        "statefulset/postgres",
        "--",
        "pg_restore",
    ]
    rdb = target.redis_rdb()
    assert rdb is not None
    assert rdb.argv == [*prefix, "statefulset/redis", "--", "redis-cli", "--no-auth-warning", "--rdb", "-"]
    assert target.psql("SELECT 1", dbname="postgres").argv[-3:] == [
        "--dbname=postgres",
        "--command",
        "SELECT 1",
    ]


def test_local_commands_keep_passwords_out_of_argv():
    target = LocalTarget("postgresql://app:s3cret@db.internal:5433/ledger", "redis://:r3dis@127.0.0.1:6380/0")
    conn = target.conn
    assert conn.password == "s3cret" and conn.dbname == "ledger"
    assert "s3cret" not in conn.conninfo() and "port=5433" in conn.conninfo()
    assert conn.env() == {"PGPASSWORD": "s3cret"}
    rdb = target.redis_rdb()
    assert rdb is not None
    assert rdb.argv == ["redis-cli", "-u", "redis://127.0.0.1:6380/0", "--no-auth-warning", "--rdb", "-"]
    assert rdb.env == {"REDISCLI_AUTH": "r3dis"}


def test_writer_stop_start_argv():
    assert compose_stop_argv(PROJECT, ["api", "pdf-worker"]) == [*PREFIX, "stop", "api", "pdf-worker"]
    assert compose_start_argv(PROJECT, ["api"]) == [*PREFIX, "start", "api"]
    kube = KubeTarget("prod")
    assert kube_replicas_argv(kube, "api") == [
        "kubectl",
        "--namespace",
        "prod",
        "get",
        "deployment/api",
        "-o",
        "jsonpath={.spec.replicas}",
    ]
    assert kube_scale_argv(kube, "pdf-worker", 0)[-2:] == ["deployment/pdf-worker", "--replicas=0"]
    assert kube_pause_keda_argv(kube, "pdf-worker", True)[-3:] == [
        "scaledobject.keda.sh/pdf-worker",
        "autoscaling.keda.sh/paused-replicas=0",
        "--overwrite",
    ]
    assert kube_pause_keda_argv(kube, "pdf-worker", False)[-2] == "autoscaling.keda.sh/paused-replicas-"


def test_compose_uploads_are_tarred_in_a_one_off_container_of_the_service_that_mounts_them() -> None:
    assert ComposeTarget(project=PROJECT).uploads_archive() is None  # MinIO: archived through S3
    target = ComposeTarget(project=PROJECT, uploads_service="api")
    archive, extract = target.uploads_archive(), target.uploads_extract()
    assert archive is not None and extract is not None
    run = [*PREFIX, "run", "--rm", "--no-deps", "-T", "api"]
    assert archive.argv == [*run, "tar", "-C", "/data/uploads", "-cf", "-", "."]
    assert extract.argv == [
        *run, "tar", "-C", "/data/uploads", "--no-same-owner", "--no-overwrite-dir", "-xf", "-",
    ]  # fmt: skip
    assert LocalTarget("postgresql://u@h/db").uploads_archive() is None
    assert KubernetesTarget().uploads_extract() is None
