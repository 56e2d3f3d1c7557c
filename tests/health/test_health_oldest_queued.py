"""queue.oldest_queued: the ledger's oldest waiting upload, judged whether or not Redis still holds it."""

from __future__ import annotations

import psycopg
import pytest

from schedgen_ops.ops.health import Endpoints, HealthThresholds, Status, run_health
from schedgen_ops.service.db import migrate

INSERT = """
INSERT INTO jobs (id, status, client_id, size_bytes, sha256, storage_key, max_attempts,
                  created_at, expires_at)
VALUES (%s, %s, 'c', 1, 'x', 'k', 3, now() - make_interval(secs => %s),
        CASE WHEN %s = 'completed' THEN now() + interval '1 day' END)
"""


@pytest.mark.parametrize(
    ("queued_ages_s", "expected", "value"),
    [
        ([], Status.OK, 0.0),
        ([30, 5], Status.OK, 30.0),
        ([200, 30], Status.WARN, 200.0),  # warn at 120 s
        ([3 * 86400, 30], Status.CRITICAL, 3 * 86400.0),  # restored from a 3-day-old backup
    ],
)
def test_oldest_queued_job_is_judged_by_the_alert_threshold(
    database_url: str,
    empty_endpoints: Endpoints,
    queued_ages_s: list[int],
    expected: Status,
    value: float,
) -> None:
    migrate(database_url)
    empty_endpoints.database_url = database_url
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i, age in enumerate(queued_ages_s):
            conn.execute(INSERT, (f"q{i}", "queued", age, "queued"))
        # Only waiting jobs count, however old a finished one is.
        conn.execute(INSERT, ("old-but-finished", "completed", 10 * 86400, "completed"))
    th = HealthThresholds(queue_oldest_job_warn_s=120, queue_oldest_job_critical_s=600)
    report = run_health(empty_endpoints, th, only=["queue"])
    check = next(c for c in report.checks if c.id == "queue.oldest_queued")
    assert check.status is expected and check.value == pytest.approx(value, abs=2)
    if expected is Status.OK:
        assert check.hint is None
    else:
        assert "never purged" in (check.hint or "") and "reconciler" in (check.hint or "")
        assert f"{len(queued_ages_s)} job(s) queued" in check.measured
