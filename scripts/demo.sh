#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up, bring the local stack up (`schedgen up`: supervisord
# running Postgres, Redis, the api and the workers from a fresh project directory), then send generated
# UP timetable PDFs (lectures, semester tests, exams) through it: upload -> poll -> events -> calendar.ics.
#
# The stack is brought DOWN at the end (data kept in the project directory). To leave it running for
# exploring, set SCHEDGEN_DEMO_KEEP=1; stop it later with `schedgen -P <project> down`.
# Output (PDFs, events JSON, calendar) goes to $SCHEDGEN_DEMO_DIR (default: a new temporary directory).
# Exits non-zero if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

out="${SCHEDGEN_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/schedgen-demo.XXXXXX")}"
mkdir -p "$out"
chmod 755 "$out"  # the local Postgres runs as nobody when we are root: it must reach project/.schedgen
project="$out/project"
mkdir -p "$project"

# Free ports for this demo (a fresh machine has the defaults free, a shared one may not).
python - "$project" <<'EOF'
import socket, sys
from pathlib import Path

import yaml

def free(n=1):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n < 65000 and all(_ok(base + i) for i in range(n)):
            return base

def _ok(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False

path = Path(sys.argv[1]) / "schedgen.yaml"
if not path.exists():
    ports = {"api": free(2), "postgres": free(), "redis": free(), "prometheus": free()}
    # The small profile's slots, blue and green: 2 x 3 worker metrics ports, 2 x 2 api replica ports.
    settings = {"profile": "small", "ports": ports, "worker": {"metrics_port": free(6)},
                "frontdoor": {"upstream_port": free(4)}}
    path.write_text(yaml.safe_dump(settings))
EOF

cleanup() {
  if [ "${SCHEDGEN_DEMO_KEEP:-0}" = "1" ]; then
    echo "demo: the stack keeps running (stop it with: schedgen -P $project down)"
  else
    echo "== bringing the stack down (data kept in $project/.schedgen)"
    schedgen -P "$project" down || true
  fi
}
trap cleanup EXIT

echo "== schedgen up (project $project)"
schedgen -P "$project" up
api=$(schedgen -P "$project" status --json | python -c 'import json,sys; print(next(iter(json.load(sys.stdin)["urls"].values())))')

echo "== the student page: $api/ (open it in a browser to upload a timetable)"
curl -sS --fail-with-body "$api/" -o "$out/page.html"
grep -q '<title>UP timetable to calendar</title>' "$out/page.html"
for asset in $(grep -o '/static/[A-Za-z0-9._-]*' "$out/page.html"); do
  curl -sS --fail-with-body "$api$asset" -o /dev/null
done
echo "   page and its $(grep -c '/static/' "$out/page.html") static files served"

echo "== generating synthetic UP timetables in $out"
schedgen samples generate "$out/lectures.pdf" --kind lectures --pages 2 --seed 1 --semester S2
schedgen samples generate "$out/tests.pdf" --kind tests --pages 1 --seed 1 --semester S2
schedgen samples generate "$out/exams.pdf" --kind exams --pages 1 --seed 1 --semester S2

total=0
for kind in lectures tests exams; do
  echo "== upload $kind.pdf to $api/api/uploads"
  accepted=$(curl -sS --fail-with-body -F "file=@$out/$kind.pdf;type=application/pdf" "$api/api/uploads")
  job=$(printf '%s' "$accepted" | python -c 'import json,sys; print(json.load(sys.stdin)["job_id"])')
  status=queued
  for _ in $(seq 1 120); do
    status=$(curl -sS --fail-with-body "$api/api/jobs/$job" | python -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    case "$status" in completed|failed) break ;; esac
    sleep 0.5
  done
  echo "   job $job: $status"
  if [ "$status" != completed ]; then
    echo "error: job $job ended $status" >&2
    exit 1
  fi
  curl -sS --fail-with-body "$api/api/jobs/$job/events" -o "$out/$kind.events.json"
  curl -sS --fail-with-body "$api/api/jobs/$job/calendar.ics?semester=S2" -o "$out/$kind.ics"
  events=$(grep -c '^BEGIN:VEVENT' "$out/$kind.ics" || true)
  echo "   $kind: $(python -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(len(t["events"]) for t in d["timetables"]))' "$out/$kind.events.json") events parsed, $events calendar entries in $out/$kind.ics"
  if [ "$events" -eq 0 ]; then
    echo "error: the calendar for $kind has no events" >&2
    exit 1
  fi
  total=$((total + events))
done

echo "== schedgen status"
schedgen -P "$project" status
echo
echo "demo: OK: 3 uploads parsed by the local stack; $total calendar entries in $out/*.ics"
echo "demo: the student page is $api/ (SCHEDGEN_DEMO_KEEP=1 keeps the stack running to open it)"
