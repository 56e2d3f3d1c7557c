"""Two concurrent backups: the second is refused and told who holds the lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import redis

from schedgen_ops.ops.backup.catalog import list_backups


def test_a_second_concurrent_backup_is_refused_naming_the_holder(ledger_url, snapshot_redis, tmp_path):
    backups = tmp_path / "backups"
    env = dict(os.environ, SCHEDGEN_DATABASE_URL=ledger_url, SCHEDGEN_REDIS_URL=snapshot_redis.url)
    # The second run imports everything first and waits, so its start-up time cannot close the window.
    second = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys\nfrom schedgen_ops.cli.main import main\nprint('ready', flush=True)\n"
            f"sys.stdin.readline()\nsys.exit(main(['backup', '--dir', {str(backups)!r}]))",
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert second.stdout is not None and second.stdout.readline().strip() == "ready"
    client = redis.Redis.from_url(snapshot_redis.url)
    # The first backup's Redis snapshot waits 3 s for more replicas, so the runs really overlap.
    client.config_set("repl-diskless-sync-max-replicas", 0)
    client.config_set("repl-diskless-sync-delay", 3)
    try:
        first = subprocess.Popen(
            [sys.executable, "-m", "schedgen_ops.cli.main", "backup", "--dir", str(backups)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not any(p.name.endswith(".partial") for p in backups.glob("*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        _, second_err = second.communicate("go\n", timeout=60)
        _, err = first.communicate(timeout=60)
    finally:
        client.config_set("repl-diskless-sync-max-replicas", 1)
        client.config_set("repl-diskless-sync-delay", 5)
        client.close()

    assert second.returncode == 1
    assert f"another backup operation holds {backups / '.lock'}: pid {first.pid} on " in second_err
    assert "(backup, since " in second_err
    assert first.returncode == 0, err
    assert [e.state for e in list_backups(backups)] == ["complete"]


def test_the_lock_is_released_when_the_holder_dies(tmp_path):
    backups = tmp_path / "backups"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from pathlib import Path\n"
            "from schedgen_ops.ops.backup.lock import backup_lock\n"
            f"with backup_lock(Path({str(backups)!r}), 'backup'):\n"
            "    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    from schedgen_ops.ops.backup.lock import is_locked

    assert is_locked(backups)
    holder.kill()
    holder.wait()
    assert not is_locked(backups)
