#!/usr/bin/env bash
# The main job, end to end on a fresh machine: set up, generate synthetic UP timetable PDFs (lectures,
# semester tests, exams), parse them into one calendar (.ics) and print the parsed events as a table.
# Output goes to $SCHEDGEN_DEMO_DIR (default: a new temporary directory). Exits non-zero if a step fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"

out="${SCHEDGEN_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/schedgen-demo.XXXXXX")}"
mkdir -p "$out"
echo "== generating synthetic UP timetables in $out"
schedgen samples generate "$out/lectures.pdf" --kind lectures --pages 2 --seed 1 --semester S2
schedgen samples generate "$out/tests.pdf" --kind tests --pages 2 --seed 1 --semester S2
schedgen samples generate "$out/exams.pdf" --kind exams --pages 1 --seed 1 --semester S2

echo "== parsing them into one calendar"
schedgen parse "$out/lectures.pdf" "$out/tests.pdf" "$out/exams.pdf" \
  --format ics --semester S2 -o "$out/timetable.ics"
events=$(grep -c '^BEGIN:VEVENT' "$out/timetable.ics")
if [ "$events" -eq 0 ]; then
  echo "error: the calendar has no events" >&2
  exit 1
fi

echo "== parsed events"
schedgen parse "$out/lectures.pdf" "$out/tests.pdf" "$out/exams.pdf" --format table
echo
echo "demo: OK: $out/timetable.ics holds $events calendar events (import it into any calendar app)"
