"""Worker behaviour: job timeout -> retry, restart after N jobs, per-replica metrics endpoint."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import psycopg
import redis
from rq import Worker
from stackkit import Stack

from schedgen_ops.runtime.dataservices import free_port


def test_attempt_past_the_job_timeout_is_retried_and_completes(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    stack = service_stack(SCHEDGEN_JOB_TIMEOUT_S="2", SCHEDGEN_JOB_RETRY_BACKOFF_S="1")
    stack.start_worker(1, env={"SCHEDGEN_TEST_SLOW_FIRST_ATTEMPT_S": "30"})
    job = stack.upload(synthetic_pdfs["tests"]).json()
    done = stack.wait_done(job["job_id"], timeout=60)
    assert done["status"] == "completed" and done["attempts"] == 2, stack.logs()
    assert "JobTimeoutException" in stack.logs()  # the first attempt was cut off by RQ's timeout


def test_worker_processes_restart_after_max_jobs(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], redis_url: str
) -> None:
    stack = service_stack(SCHEDGEN_WORKER_MAX_JOBS="2")
    ids = [stack.upload(synthetic_pdfs["exams"]).json()["job_id"] for _ in range(5)]
    stack.start_worker(1)
    for job_id in ids:
        assert stack.wait_done(job_id)["status"] == "completed"
    time.sleep(1.5)  # the supervisor notices the exit of the process that ran jobs 5 (and 6)
    # 5 jobs at 2 per process: at least 3 processes ran them; one is live now.
    worker_log = stack.procs[-1].output()
    assert worker_log.count("worker process exited; restarting") >= 2, worker_log[-3000:]
    conn = redis.Redis.from_url(redis_url)
    assert len(Worker.all(connection=conn)) == 1
    conn.close()


def test_each_worker_replica_serves_metrics_of_all_its_processes(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes], database_url: str
) -> None:
    stack = service_stack()
    port = free_port()
    # Its own metrics dir (as in a separate container): only the worker endpoint can see these jobs.
    worker_dir = stack.workdir / "worker-metrics"
    stack.start_worker(
        2, env={"SCHEDGEN_WORKER_METRICS_PORT": str(port), "SCHEDGEN_METRICS_DIR": str(worker_dir)}
    )

    def metrics(until: str) -> str:
        deadline, text = time.monotonic() + 30, ""
        while time.monotonic() < deadline:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
                if until in text:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        return text

    # A process counts as alive once its parser sandbox is warm: wait for both before sending work, so
    # that both take jobs (on a loaded machine one can still be warming up when the other has done six).
    assert "schedgen_worker_processes 2.0" in metrics("schedgen_worker_processes 2.0")
    ids = [stack.upload(synthetic_pdfs["lectures"]).json()["job_id"] for _ in range(6)]
    for job_id in ids:
        assert stack.wait_done(job_id)["status"] == "completed"
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM results").fetchone() == (6,)
    text = metrics('status="completed"} 6.0')
    assert 'schedgen_jobs_total{kind="lectures",status="completed"} 6.0' in text
    assert "schedgen_worker_processes 2.0" in text
    assert 'schedgen_parse_duration_seconds_count{kind="lectures"} 6.0' in text
    # Processes of both workers contributed (one metrics file each).
    assert len(list(worker_dir.glob("counter_*.db"))) >= 2


def test_worker_processes_and_their_parse_children_run_niced(
    service_stack: Callable[..., Stack], synthetic_pdfs: dict[str, bytes]
) -> None:
    """Parses yield the CPU to the api: the supervisor keeps its priority, every worker process and its
    sandbox child run at SCHEDGEN_WORKER_NICE, and a job still completes."""
    import psutil

    stack = service_stack(SCHEDGEN_WORKER_NICE="7")
    supervisor = psutil.Process(stack.start_worker(2).pid)
    job = stack.upload(synthetic_pdfs["exams"]).json()
    assert stack.wait_done(job["job_id"])["status"] == "completed"
    workers = [p for p in supervisor.children() if "--scheduler" not in p.cmdline()]
    assert len(workers) == 2, workers
    assert supervisor.nice() == 0  # the supervisor (and its retry scheduler) keep their priority
    children = [child for worker in workers for child in worker.children(recursive=True)]
    assert children, "each worker parses in a sandbox child"
    assert {p.nice() for p in workers + children} == {7}


def test_lower_cpu_priority_never_raises_a_priority() -> None:
    import os
    import subprocess
    import sys

    code = (
        "import os; from schedgen_ops.service.worker import lower_cpu_priority as lower; "
        "os.nice(12); print(lower(5), os.getpriority(os.PRIO_PROCESS, 0), lower(15), "
        "os.getpriority(os.PRIO_PROCESS, 0))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ
    )
    assert out.stdout.split() == ["12", "12", "15", "15"]
