#!/bin/sh
# Entrypoint of the schedgen test stand-in for the official redis image: execs the command, as the official
# one does. `docker run IMAGE --opt` or `IMAGE file.conf` run redis-server; started as root, it hands /data
# to the redis user and steps down to it. Under our compose (user 999:1000, read-only root) it only execs.
set -eu

case ${1:-} in
-* | *.conf) set -- redis-server "$@" ;;
esac

if [ "${1:-}" = redis-server ]; then
	if [ "$(id -u)" = 0 ]; then
		find . \! -user redis -exec chown redis:redis '{}' +
		exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
	fi
	# The official image's redis-server defaults to protected-mode no (Debian's to yes); a config file,
	# if given, keeps its own setting.
	case ${2:-} in
	"" | -*)
		shift
		set -- redis-server --protected-mode no "$@"
		;;
	esac
fi

# Data files private to the redis user, unless the caller chose a umask.
if [ "$(umask)" = 0022 ]; then
	umask 0077
fi

exec "$@"
