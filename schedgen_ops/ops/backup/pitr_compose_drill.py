"""`backup verify --deep` on compose: the point-in-time restore drill in a one-off postgres container.

`pgbackrest restore` into ``pgdata.drill-<time>`` in the postgres volume, then, in a one-off container
of the same service, a scratch server on that directory (unix socket in /tmp only, archive_mode off so
it pushes nothing into the repository) recovers to the target and promotes; every table is counted and
the server stopped. The directory is removed afterwards, whatever happened. The live server keeps
running throughout.
"""

from __future__ import annotations

import contextlib
import time

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.manifest import utcnow
from schedgen_ops.ops.backup.pitr_compose import ComposePitrSite, in_fresh_dir, pgbackrest_argv, remove_dir
from schedgen_ops.ops.backup.pitr_compose_restore import restore_options
from schedgen_ops.ops.backup.pitr_drill import DrillResult
from schedgen_ops.ops.backup.pitr_flow import TABLES_SQL
from schedgen_ops.ops.backup.pitr_scratch import RecoveryTarget

#: The scratch server's port on its own unix socket (nothing else listens in a one-off container).
SCRATCH_PORT = 5439

#: Start a server on "$0", wait until it has promoted (at most $2 seconds), count every table of the
#: database "$1" (lines "schema.table|rows"), stop it. Runs as the postgres user of the container.
_SCRIPT = r"""
set -eu
dir=$0 db=$1 limit=$2 port=%(port)d max=%(max)d
postgres -D "$dir" -c config_file=/etc/postgresql/postgresql.conf -c hba_file="$dir/pg_hba.conf" \
  -c listen_addresses= -c unix_socket_directories=/tmp -c port="$port" -c archive_mode=off \
  -c max_connections="$max" >/tmp/drill.log 2>&1 &
pid=$!
stop() { kill -INT "$pid" 2>/dev/null || :; wait "$pid" 2>/dev/null || :; }
trap stop EXIT
q() { psql --no-psqlrc -h /tmp -p "$port" -U postgres -d "$1" -tAc "$2"; }
tries=0
until [ "$(q postgres 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "the scratch server exited:" >&2; tail -20 /tmp/drill.log >&2; exit 1
  fi
  tries=$((tries + 1))
  if [ "$tries" -gt $((limit * 2)) ]; then
    echo "still recovering after ${limit}s" >&2; tail -5 /tmp/drill.log >&2; exit 1
  fi
  sleep 0.5
done
q "$db" "%(tables)s" | while IFS='|' read -r schema table; do
  printf '%%s.%%s|%%s\n' "$schema" "$table" "$(q "$db" "SELECT count(*) FROM \"$schema\".\"$table\"")"
done
"""


def drill_script(max_connections: int) -> str:
    return _SCRIPT % {"port": SCRATCH_PORT, "max": max_connections, "tables": TABLES_SQL}


def drill(site: ComposePitrSite, database: str, target: RecoveryTarget | None = None) -> DrillResult:
    target = target or RecoveryTarget(None)
    result = DrillResult(target=target.describe())
    scratch = f"{site.pg_data}.drill-{utcnow().strftime('%Y%m%dt%H%M%Sz')}"
    options = restore_options(site.stanza, scratch, target, recover_in=scratch)
    command = pgbackrest_argv(site.stanza, "restore", *options)
    limit = 600
    try:
        clock = time.monotonic()
        site.exec(
            site.in_container(in_fresh_dir(scratch, command), oneoff=True),
            what=f"restoring the repository to {target.describe()} for the drill",
            timeout_s=3600,
        )
        result.restore_s = round(time.monotonic() - clock, 3)
        clock = time.monotonic()
        script = ["sh", "-c", drill_script(site.config.max_connections()), scratch, database, str(limit)]
        out = site.exec(
            site.in_container(script, oneoff=True), what="recovering the drill copy", timeout_s=limit + 120
        )
        result.recover_s = round(time.monotonic() - clock, 3)
        for line in out.strip().splitlines():
            name, _, count = line.rpartition("|")
            if name and count.isdigit():
                result.recovered_rows[name] = int(count)
    except SchedgenError as exc:
        result.detail = exc.one_line()
        return result
    finally:
        with contextlib.suppress(SchedgenError):
            site.exec(site.in_container(remove_dir(scratch), oneoff=True), what="removing", timeout_s=300)
    return result.judge(database)
