#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (run as root, or with the system packages already present):
# Debian packages that the stack and the tests use (only the missing ones), then a virtualenv in .venv/
# holding this package in editable mode with its development extras.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)  # point-in-time recovery (docs/BACKUP.md)
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl)  # scripts/demo.sh talks to the api with curl
command -v wrk >/dev/null 2>&1 || need+=(wrk)  # benchmarks/status_bench.py (job status vs a bare endpoint)
command -v caddy >/dev/null 2>&1 || need+=(caddy)  # the local runtime's front door (TLS, balancing)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# The tests build their images (debootstrap base) and run them on a local Docker Engine, which they start
# themselves when needed; both commands live in sbin, which a non-root PATH may lack.
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
# The student page's browser tests drive Debian's Chromium through Selenium (tests/web); no browser download.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${need[*]} (run this script as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian's packages start their own services; schedgen and its tests start their own servers.
  for svc in redis-server prometheus postgresql caddy; do
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
    service "$svc" stop >/dev/null 2>&1 || true
  done
  # Likewise the engine that docker.io just installed and started: the tests start dockerd when they need it.
  if [[ " ${need[*]} " == *" docker.io "* ]]; then
    if command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now docker.socket docker.service containerd.service >/dev/null 2>&1 || true
    fi
    service docker stop >/dev/null 2>&1 || true
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  python3 -m venv .venv
fi
stamp=.venv/.schedgen-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "bootstrap: installing schedgen-ops and its dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  touch "$stamp"
fi
