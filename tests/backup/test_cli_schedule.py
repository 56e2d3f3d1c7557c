"""The scheduled chain `schedgen backup && schedgen backup verify && schedgen backup prune`, the JSON
shapes, and the failure webhook."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import psycopg

from schedgen_ops.cli.main import main
from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.catalog import list_backups


def test_the_scheduled_chain_runs_and_leaves_a_verified_backup(ledger_url, redis_url_fast, tmp_path):
    # As the systemd unit runs it: in a project with schedgen.yaml, URLs and the directory from the env.
    (tmp_path / "schedgen.yaml").write_text("profile: small\n")
    backups = tmp_path / "from-env"
    env = dict(
        os.environ,
        SCHEDGEN_DATABASE_URL=ledger_url,
        SCHEDGEN_REDIS_URL=redis_url_fast,
        SCHEDGEN_BACKUP_DIR=str(backups),
        SCHEDGEN_PROJECT=str(tmp_path),
    )
    done = subprocess.run(
        ["sh", "-c", "schedgen backup && schedgen backup verify && schedgen backup prune"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    (entry,) = list_backups(backups)
    assert entry.state == "complete" and entry.verified
    assert "keep   " + entry.id in done.stdout  # prune kept it (newest verified, daily)


def test_list_json_shape(ledger_url, tmp_path, capsys):
    backups = tmp_path / "backups"
    assert main(["backup", "--dir", str(backups), "--database-url", ledger_url, "--json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["status"] == "complete" and created["postgres"]["tables"]["public.jobs"] == 0
    assert main(["backup", "list", "--dir", str(backups), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    (item,) = listed["backups"]
    assert item["id"] == created["id"] and item["state"] == "complete" and item["verification"] is None
    assert set(item) >= {"size_bytes", "rows_total", "started_at", "finished_at", "reason", "path"}


class _Recorder(BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        _Recorder.bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_backup_posts_to_the_webhook_and_exits_non_zero(postgres_server, tmp_path, capsys):
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Recorder.bodies.clear()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        code = main(
            [
                "backup",
                "--dir",
                str(tmp_path / "backups"),
                "--database-url",
                postgres_server.url_for("missing_db"),
                "--webhook",
                url,
            ]
        )
    finally:
        server.shutdown()
    assert code == 1
    assert 'database "missing_db" does not exist' in capsys.readouterr().err
    (body,) = _Recorder.bodies
    assert body["event"] == "schedgen.backup.failed" and body["command"] == "backup"
    assert body["code"] == "postgres_unreachable" and "missing_db" in body["error"]
    assert "missing_db" in body["text"]


def test_restore_cli_asks_first_and_reports_json(ledger_url, tmp_path, capsys, make_jobs, capture_rows):
    make_jobs(ledger_url, 6, completed=2)
    original = capture_rows(ledger_url)
    backups = tmp_path / "backups"
    assert main(["backup", "--dir", str(backups), "--database-url", ledger_url, "--json"]) == 0
    backup_id = json.loads(capsys.readouterr().out)["id"]
    with psycopg.connect(ledger_url, autocommit=True) as conn:
        conn.execute("DELETE FROM results")

    from typer.testing import CliRunner

    from schedgen_ops.cli.main import app

    declined = CliRunner().invoke(
        app, ["restore", backup_id, "--dir", str(backups), "--database-url", ledger_url], input="n\n"
    )
    assert isinstance(declined.exception, SchedgenError) and declined.exception.code == "cancelled"
    assert capture_rows(ledger_url) != original

    assert (
        main(["restore", backup_id, "--yes", "--dir", str(backups), "--database-url", ledger_url, "--json"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert capture_rows(ledger_url) == original
    assert report["backup_id"] == backup_id and report["safety_backup_id"]
    assert report["tables"]["public.results"] == 2 and report["stopped"] == []
    # `schedgen health` ran against the restored stack (no api runs in this test, so not healthy).
    health = report["health"]
    assert health["components"]["postgres"] == "ok", health
    assert health["verdict"] in ("healthy", "degraded", "down") and health["problems"]
