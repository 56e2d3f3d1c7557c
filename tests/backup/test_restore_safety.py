"""Restore refuses a set of another deployment or database unless forced, and picks its Postgres mode by
what the restoring role may do: swap (new database, renamed in, owner and grants kept) or in place."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.catalog import list_backups
from schedgen_ops.ops.backup.create import BackupRequest, create_backup
from schedgen_ops.ops.backup.restore import RestoreRequest, restore_backup
from schedgen_ops.ops.backup.swap import swap_in
from schedgen_ops.ops.backup.targets import LocalTarget
from schedgen_ops.service import db


def _fetch(url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(row) for row in conn.execute(sql, params).fetchall()]


def _execute(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def scratch(postgres_server) -> Iterator[list[str]]:
    """Names of databases and roles a test creates (dropped afterwards, databases first)."""
    made: list[str] = []
    yield made
    for name in [n for n in made if n.startswith("t_")] + [n for n in made if not n.startswith("t_")]:
        if name.startswith("t_"):
            for (other,) in _fetch(
                postgres_server.url, "SELECT datname FROM pg_database WHERE datname LIKE %s", name + "%"
            ):
                postgres_server.drop_database(str(other))
        else:
            postgres_server.execute(f'DROP ROLE IF EXISTS "{name}"')


def test_a_set_of_another_database_or_deployment_needs_force(
    ledger_url, postgres_server, tmp_path, make_jobs, capture_rows, signing_key, scratch
):
    make_jobs(ledger_url, 5, completed=2)
    backups = tmp_path / "backups"
    manifest = create_backup(
        BackupRequest(
            target=LocalTarget(ledger_url), directory=backups, key=signing_key, project_name="site-a"
        )
    )
    other = f"t_other_{uuid.uuid4().hex[:12]}"
    scratch.append(other)
    other_url = postgres_server.create_database(other)
    db.migrate(other_url)
    before = capture_rows(other_url)
    dumped = LocalTarget(ledger_url).conn.dbname

    def restore(url: str, **extra: object):
        request = RestoreRequest(
            target=LocalTarget(url),
            directory=backups,
            backup_id=manifest.id,
            key=signing_key,
            safety_backup=False,
        )
        for name, value in extra.items():
            setattr(request, name, value)
        return restore_backup(request)

    with pytest.raises(
        SchedgenError, match=f"is of another database '{dumped}' \\(this target's is '{other}'\\)"
    ) as raised:
        restore(other_url)
    assert raised.value.code == "backup_other_origin" and "--force" in (raised.value.hint or "")
    with pytest.raises(
        SchedgenError, match="is of another deployment 'site-a' \\(this project's is 'site-b'\\)"
    ):
        restore(ledger_url, project_name="site-b")
    assert capture_rows(other_url) == before and [e.id for e in list_backups(backups)] == [manifest.id]

    report = restore(other_url, project_name="site-b", force=True)

    assert report.forced == [
        f"database '{dumped}' (this target's is '{other}')",
        "deployment 'site-a' (this project's is 'site-b')",
    ]
    assert capture_rows(other_url) == capture_rows(ledger_url)


def test_a_swap_keeps_the_databases_owner_and_grants(
    postgres_server, tmp_path, make_jobs, signing_key, scratch
):
    suffix = uuid.uuid4().hex[:12]
    owner, reader, name = f"own_{suffix}", f"read_{suffix}", f"t_acl_{suffix}"
    scratch += [name, owner, reader]
    for role in (owner, reader):
        postgres_server.execute(f'CREATE ROLE "{role}" LOGIN')
    postgres_server.execute(f'CREATE DATABASE "{name}" OWNER "{owner}" TEMPLATE template0')
    postgres_server.execute(f'REVOKE ALL ON DATABASE "{name}" FROM PUBLIC')
    postgres_server.execute(f'GRANT CONNECT, TEMP ON DATABASE "{name}" TO "{reader}"')
    url = postgres_server.url_for(name)
    db.migrate(url)
    make_jobs(url, 3)
    access = (
        "SELECT pg_get_userbyid(d.datdba), a.grantee::regrole::text, a.privilege_type FROM pg_database d, "
        "aclexplode(d.datacl) a WHERE d.datname = %s ORDER BY 2, 3"
    )
    before = _fetch(postgres_server.url, access, name)
    assert ("-", "CONNECT") not in [row[1:] for row in before] and len(before) >= 2
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(url), directory=backups, key=signing_key))

    report = restore_backup(
        RestoreRequest(
            target=LocalTarget(url),
            directory=backups,
            backup_id=manifest.id,
            key=signing_key,
            safety_backup=False,
        )
    )

    assert report.mode == "swap" and report.previous_database
    assert _fetch(postgres_server.url, access, name) == before
    assert _fetch(postgres_server.url, access, report.previous_database) == before


def test_the_mode_follows_what_the_restoring_role_may_do(
    postgres_server, tmp_path, make_jobs, capture_rows, signing_key, scratch
):
    suffix = uuid.uuid4().hex[:12]
    role, name = f"restorer_{suffix}", f"t_priv_{suffix}"
    scratch += [name, role]
    postgres_server.execute(f'CREATE ROLE "{role}" LOGIN')  # no CREATEDB, no superuser
    postgres_server.execute(f'CREATE DATABASE "{name}" OWNER "{role}" TEMPLATE template0')
    url = f"postgresql://{role}@{postgres_server.host}:{postgres_server.port}/{name}"
    db.migrate(url)
    make_jobs(url, 6, completed=2)
    original = capture_rows(url)
    backups = tmp_path / "backups"
    manifest = create_backup(BackupRequest(target=LocalTarget(url), directory=backups, key=signing_key))

    def restore(mode: str):
        request = RestoreRequest(
            target=LocalTarget(url),
            directory=backups,
            backup_id=manifest.id,
            key=signing_key,
            mode=mode,  # type: ignore[arg-type]
        )
        return restore_backup(request)

    with pytest.raises(SchedgenError, match=f"a swap restore needs .*: role {role} lacks CREATEDB") as raised:
        restore("swap")
    assert raised.value.code == "restore_swap_denied"
    assert [e.id for e in list_backups(backups)] == [manifest.id]  # refused before the safety backup

    _execute(url, "DELETE FROM results")
    report = restore("auto")
    assert (
        report.mode == "clean"
        and report.mode_reason == f"in place (role {role} lacks CREATEDB, which a swap needs)"
    )
    assert capture_rows(url) == original

    postgres_server.execute(f'ALTER ROLE "{role}" CREATEDB')  # the owner may now create and rename databases
    _execute(url, "DELETE FROM results")
    report = restore("auto")
    assert report.mode == "swap" and report.previous_database
    assert capture_rows(url) == original
    previous = postgres_server.url_for(str(report.previous_database))
    assert _fetch(previous, "SELECT count(*) FROM results") == [(0,)]  # what it replaced, kept

    # A session of another role it may not end (an exporter, say) would hold the rename: auto restores in
    # place instead (that session takes no lock pg_restore needs), --swap is refused, and the swap window
    # itself refuses before it touches the live database.
    other = f"other_{suffix}"
    scratch.append(other)
    postgres_server.execute(f'CREATE ROLE "{other}" LOGIN')
    session = f"postgresql://{other}@{postgres_server.host}:{postgres_server.port}/{name}"
    with psycopg.connect(session) as held:
        _execute(url, "DELETE FROM results")
        report = restore("auto")
        assert (
            report.mode == "clean" and f"may not end the sessions of {other} on {name}" in report.mode_reason
        )
        assert capture_rows(url) == original
        with pytest.raises(SchedgenError, match=f"may not end the sessions of {other}"):
            restore("swap")
        with pytest.raises(SchedgenError, match=f"sessions of {other} on {name} cannot be ended") as raised:
            swap_in(LocalTarget(url), live=name, incoming=str(report.previous_database), previous=name + "_x")
        assert raised.value.code == "restore_sessions_busy"
        assert held.execute("SELECT current_database()").fetchone() == (name,)  # never ended
    allowed = "SELECT datallowconn FROM pg_database WHERE datname = %s"
    assert _fetch(postgres_server.url, allowed, name) == [(True,)]


def test_derived_database_names_keep_their_suffix_even_for_a_63_character_database() -> None:
    """Cutting the end of "<live>_restore_<id>" gave back <live> itself, which the swap then dropped."""
    from schedgen_ops.ops.backup.restore import _derived_name

    live = "d" * 63
    incoming = _derived_name(live, "_restore_20261202t021500z")
    assert incoming != live and len(incoming) == 63 and incoming.endswith("_restore_20261202t021500z")
    assert _derived_name("schedgen", "_before_x") == "schedgen_before_x"
