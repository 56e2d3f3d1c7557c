"""Point-in-time recovery on the compose runtime, on a real Docker Engine and real pgBackRest.

One stack with backup.pitr on (archive_timeout 10 s, so the test waits seconds, not a minute):
`schedgen build` builds the service image and the postgres image with pgBackRest (FROM the Debian
stand-in of the official image, tests/dockerkit); the deploy creates the stanza and the first full
backup. Jobs committed through the api reach the repository as archived WAL (pg_stat_archiver and
`pgbackrest info`), `backup list` shows the window and `health` judges the archive. Then the disk is
lost (postgres container and volume removed) and `restore --to latest` brings every committed job
back; `restore --to T` then gives exactly the jobs committed before T.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import shared_path
from tests.dockerkit import base_image, standin_image
from tests.e2e.composekit import ComposeStack, configured_stack

pytestmark = [pytest.mark.e2e, pytest.mark.docker, pytest.mark.timeout(1200)]

ARCHIVE_TIMEOUT_S = 10
PDF = "UP_EXAM_SS.pdf"


@pytest.fixture(scope="module")
def stack() -> Iterator[ComposeStack]:
    pdf = shared_path("fixtures", "up-pdfs", PDF)
    pitr = {"backup.pitr.enabled": "true", "backup.pitr.archive_timeout_s": str(ARCHIVE_TIMEOUT_S)}
    # The postgres image with pgBackRest outlives the stack: tagged by content like the stand-ins.
    with configured_stack("sgpitr", pitr, tempdir="schedgen-e2e-pitr-") as s:
        s.pdf = pdf  # type: ignore[attr-defined]
        yield s


def _upload(stack: ComposeStack) -> str:
    return str(stack.upload_and_wait(stack.pdf)["job_id"])  # type: ignore[attr-defined]


def _job_status(stack: ComposeStack, job_id: str) -> int:
    return httpx.get(f"{stack.api}/api/jobs/{job_id}", timeout=10).status_code


def _superuser_sql(stack: ComposeStack, sql: str) -> str:
    return stack.ok("exec", "postgres", "--", "psql", "-U", "postgres", "-d", "schedgen", "-tAc", sql).strip()


def _now_in_postgres(stack: ComposeStack) -> dt.datetime:
    stamp = _superuser_sql(
        stack, "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    )
    return dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC)


def _wait_archived_after(stack: ComposeStack, moment: dt.datetime, timeout_s: float) -> dt.datetime:
    """Until pg_stat_archiver's last archived segment is newer than ``moment`` (archive_timeout's doing)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        last = _superuser_sql(
            stack,
            "SELECT coalesce(to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '') "
            "|| ' ' || failed_count FROM pg_stat_archiver",
        )
        stamp = last.rsplit(" ", 1)[0]
        if stamp:
            archived = dt.datetime.fromisoformat(stamp).replace(tzinfo=dt.UTC)
            if archived > moment:
                return archived
        time.sleep(1)
    raise AssertionError(f"no WAL archived after {moment} within {timeout_s:.0f}s (pg_stat_archiver: {last})")


def test_build_makes_the_postgres_image_with_pgbackrest(stack: ComposeStack) -> None:
    started = time.monotonic()
    built = json.loads(stack.ok("build", "--base-image", base_image(), "--json", timeout=1200))
    stack.build_s = time.monotonic() - started
    image = built["postgres_pitr"]["tag"]
    assert image.startswith("schedgen-test/postgres-pgbackrest:"), built
    assert built["postgres_pitr"]["base_image"] == standin_image("postgres")
    version = stack.docker("run", "--rm", "--entrypoint", "pgbackrest", image, "version").strip()
    assert version.startswith("pgBackRest 2."), version
    # No secret in the image: its environment and files carry no cipher pass.
    env = stack.docker("image", "inspect", "--format", "{{json .Config.Env}}", image)
    assert "CIPHER" not in env
    stack.image = image  # type: ignore[attr-defined]


def test_deploy_creates_the_stanza_and_the_first_full_backup(stack: ComposeStack) -> None:
    deployed = json.loads(stack.ok("deploy", "--target", "compose", "--no-canary", "--json", timeout=900))
    assert deployed["pitr"]["stanza"] == stack.name
    first = deployed["pitr"]["first_backup"]
    assert first is not None and first["type"] == "full", deployed
    running = stack.docker(
        "inspect", "--format", "{{.Config.Image}}", stack.containers("postgres")[0]
    ).strip()
    assert running == stack.image  # type: ignore[attr-defined]
    # A second enable is idempotent: the repository already holds a backup.
    again = json.loads(stack.ok("backup", "pitr-enable", "--json", timeout=300))
    assert again["first_backup"] is None and again["stanza"] == stack.name


def test_committed_jobs_reach_the_repository_as_archived_wal(stack: ComposeStack) -> None:
    stack.before = _upload(stack)  # type: ignore[attr-defined]
    time.sleep(1.5)
    stack.target = _now_in_postgres(stack)  # type: ignore[attr-defined]
    time.sleep(1.5)
    stack.after = _upload(stack)  # type: ignore[attr-defined]
    committed = _now_in_postgres(stack)
    # No forced switch: archive_timeout closes the segment holding the commits within 10 s.
    archived = _wait_archived_after(stack, committed, timeout_s=ARCHIVE_TIMEOUT_S * 4 + 20)
    assert archived > committed
    info = json.loads(
        stack.ok("exec", "postgres", "--", "pgbackrest", f"--stanza={stack.name}", "info", "--output=json")
    )
    assert info[0]["status"]["code"] == 0 and info[0]["archive"][0]["max"], info
    listed = json.loads(stack.ok("backup", "list", "--json"))["pitr"]
    assert listed["earliest"] and listed["latest"] >= committed.isoformat().replace("+00:00", "Z")[:19], (
        listed
    )
    assert listed["latest_source"].startswith("last archived WAL segment"), listed
    health = json.loads(stack.cli("health", "--json", timeout=120).stdout)
    wal = {c["name"]: c["status"] for c in health["checks"] if c["name"].startswith("wal_archive")}
    assert wal == {"wal_archive_failures": "ok", "wal_archive_age": "ok"}, health["checks"]


def test_the_scheduled_backup_adds_a_pgbackrest_backup_and_the_deep_verify_drills(
    stack: ComposeStack,
) -> None:
    backup = json.loads(stack.ok("backup", "--json", timeout=600))
    assert backup["pitr"]["backup"]["type"] in ("full", "diff") and not backup["pitr"]["first"], backup[
        "pitr"
    ]
    verified = json.loads(stack.ok("backup", "verify", "--deep", "--json", timeout=900))
    drill = verified["pitr"]["drill"]
    assert drill["ok"] and drill["target"] == "latest", drill
    jobs = int(stack.psql("SELECT count(*) FROM jobs").strip())
    assert f": {jobs} jobs," in drill["detail"], drill
    # The drill's directory is gone again; the live data directory is the only one in the volume.
    listing = stack.ok("exec", "postgres", "--", "ls", "/var/lib/postgresql/data").split()
    assert listing == ["pgdata"], listing


def test_restore_latest_after_the_volume_is_lost_brings_every_job_back(stack: ComposeStack) -> None:
    jobs = int(stack.psql("SELECT count(*) FROM jobs").strip())
    assert jobs >= 2
    # The disk is lost: the server stops and its volume goes; the repository's volume stays.
    for container in stack.containers("postgres"):
        stack.docker("rm", "-f", container)
    stack.docker("volume", "rm", f"{stack.name}_postgres-data")
    started = time.monotonic()
    restored = json.loads(
        stack.ok(
            "restore", "--to", "latest", "--yes", "--no-safety-backup", "--no-health", "--json", timeout=900
        )
    )
    stack.restore_s = time.monotonic() - started  # type: ignore[attr-defined]
    assert restored["target"] == "latest" and restored["archive_check"] == "ok", restored
    assert sorted(restored["stopped"]) == ["api", "pdf-worker"] == sorted(restored["restarted"]), restored
    recovered = {t: n for t, n in restored["recovered_rows"].items() if t.rpartition(".")[2] == "jobs"}
    assert list(recovered.values()) == [jobs], restored["recovered_rows"]
    assert stack.ready(), "the api did not come back after the restore"
    for job in (stack.before, stack.after):  # type: ignore[attr-defined]
        assert _job_status(stack, job) == 200


def test_restore_to_a_time_gives_exactly_the_jobs_committed_before_it(stack: ComposeStack) -> None:
    target = stack.target.isoformat().replace("+00:00", "Z")  # type: ignore[attr-defined]
    restored = json.loads(stack.ok("restore", "--to", target, "--yes", "--no-health", "--json", timeout=900))
    assert restored["safety_backup_id"], restored  # the live server answered: its state was kept first
    assert stack.ready(), "the api did not come back after the restore"
    assert _job_status(stack, stack.before) == 200  # type: ignore[attr-defined]
    assert _job_status(stack, stack.after) == 404  # type: ignore[attr-defined]
