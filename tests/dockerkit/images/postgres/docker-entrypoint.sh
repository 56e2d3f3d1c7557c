#!/bin/sh
# Entrypoint of the schedgen test stand-in for the official postgres image, with the same environment
# interface: on the first start (no $PGDATA/PG_VERSION) create the cluster with POSTGRES_USER and
# POSTGRES_PASSWORD, allow password logins from the network, create POSTGRES_DB and run
# /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz against a socket-only temporary server; then exec the
# command. Works as the postgres user under a read-only root with tmpfs on /tmp and /var/run/postgresql.
set -eu

say() { printf 'entrypoint: %s\n' "$*" >&2; }

# VAR or VAR_FILE (a Docker secret's path), never both.
from_file() {
	eval "value=\${$1:-}"
	eval "file=\${$1_FILE:-}"
	if [ -n "$file" ]; then
		if [ -n "$value" ]; then
			say "set $1 or $1_FILE, not both"
			exit 1
		fi
		value=$(cat "$file")
		export "$1=$value"
	fi
	unset "$1_FILE" || :
}

psql_init() {
	psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username="$POSTGRES_USER" --port="$port" "$@"
}

initialise() {
	auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
		say "error: $PGDATA holds no database and POSTGRES_PASSWORD is empty: set POSTGRES_PASSWORD (or"
		say "POSTGRES_PASSWORD_FILE) for the superuser $POSTGRES_USER; POSTGRES_HOST_AUTH_METHOD=trust would"
		say "accept every connection without a password (never do that outside a throwaway test)."
		exit 1
	fi
	mkdir -p "$PGDATA"
	chmod 0700 "$PGDATA" 2>/dev/null || :
	say "initialising $PGDATA for superuser $POSTGRES_USER"
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a list of options
	if [ -n "${POSTGRES_PASSWORD:-}" ]; then
		printf '%s\n' "$POSTGRES_PASSWORD" |
			initdb --username="$POSTGRES_USER" --pwfile=/dev/stdin ${POSTGRES_INITDB_ARGS:-}
	else
		initdb --username="$POSTGRES_USER" ${POSTGRES_INITDB_ARGS:-}
	fi
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"
	printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"

	# A temporary server on the unix socket only, with the caller's options (e.g. config_file).
	port=${PGPORT:-5432}
	"$@" -c listen_addresses= -p "$port" &
	pid=$!
	tries=0
	until pg_isready -q -p "$port"; do
		if ! kill -0 "$pid" 2>/dev/null; then
			say "error: the temporary server exited during initialisation (see its log above)"
			exit 1
		fi
		tries=$((tries + 1))
		if [ "$tries" -gt 300 ]; then
			say "error: the temporary server did not accept connections within 60 s"
			exit 1
		fi
		sleep 0.2
	done

	if [ "$POSTGRES_DB" != postgres ]; then
		say "creating database $POSTGRES_DB"
		psql_init --dbname=postgres --set=db="$POSTGRES_DB" <<-'SQL'
			CREATE DATABASE :"db";
		SQL
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case $f in
		*.sh)
			if [ -x "$f" ]; then
				say "running $f"
				"$f"
			else
				say "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			say "running $f"
			psql_init --dbname="$POSTGRES_DB" --file="$f"
			;;
		*.sql.gz)
			say "running $f"
			gzip -dc "$f" | psql_init --dbname="$POSTGRES_DB"
			;;
		*) say "ignoring $f" ;;
		esac
	done

	pg_ctl --pgdata="$PGDATA" --mode=fast --wait --silent stop
	wait "$pid" || :
	say "initialisation complete; starting the server"
}

case ${1:-} in
-*) set -- postgres "$@" ;;
esac

if [ "${1:-}" = postgres ]; then
	PGDATA=${PGDATA:-/var/lib/postgresql/data}
	export PGDATA
	if [ "$(id -u)" = 0 ]; then
		# Started as root (no --user): hand the data directories to postgres, then run as postgres.
		mkdir -p "$PGDATA" /var/run/postgresql
		find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
		chmod 0700 "$PGDATA"
		chown postgres:postgres /var/run/postgresql
		exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
	fi
	from_file POSTGRES_PASSWORD
	from_file POSTGRES_USER
	from_file POSTGRES_DB
	from_file POSTGRES_INITDB_ARGS
	POSTGRES_USER=${POSTGRES_USER:-postgres}
	POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
	export POSTGRES_USER POSTGRES_DB
	if [ -s "$PGDATA/PG_VERSION" ]; then
		say "$PGDATA already holds a PostgreSQL $(cat "$PGDATA/PG_VERSION") database; skipping initialisation"
	else
		initialise "$@"
	fi
fi

exec "$@"
