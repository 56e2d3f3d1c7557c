"""Worker processes: `run_worker_process` is one RQ worker; `supervise` keeps N of them running.

Each process is an RQ worker (`rq_worker.LeanWorker`: a `SimpleWorker` without RQ's repeated per-job
heartbeats; jobs run in the process, so the DB pool and the parser sandbox child stay warm; one metrics
file per process) that exits after ``worker_max_jobs`` jobs as a leak guard; the supervisor restarts it.
The supervisor also runs the reconciler loop and serves the replica's /metrics, aggregated over all its
processes.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from types import FrameType

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ServiceSettings

log = logging.getLogger("schedgen.worker")


def run_worker_process(*, burst: bool) -> int:
    """Run one RQ worker in this process until max jobs, burst end or SIGTERM (warm shutdown)."""
    from schedgen_ops.service import db, tasks
    from schedgen_ops.service.config import load_settings
    from schedgen_ops.service.context import ServiceContext
    from schedgen_ops.service.logs import setup_logging
    from schedgen_ops.service.metrics import WORKER_PROCESSES, process_exited, start_memory_updates
    from schedgen_ops.service.queue import queues
    from schedgen_ops.service.rq_worker import LeanWorker

    settings = load_settings()
    setup_logging(settings.log_level, "worker")
    lower_cpu_priority(settings.worker_nice)  # before the sandbox child starts: it inherits the niceness
    db.migrate(settings.database_url.get_secret_value())
    # The parser loads before the first job, not during it: in the sandbox child this process parses in.
    tasks.warm_up(settings)
    ctx = ServiceContext.create(settings, name="worker")
    tasks.set_context(ctx)
    WORKER_PROCESSES.inc()
    memory_updates = start_memory_updates("worker")
    name = f"{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:6]}"
    worker = LeanWorker(queues(ctx.redis), connection=ctx.redis, name=name)
    try:
        worker.work(
            burst=burst,
            max_jobs=settings.worker_max_jobs,
            with_scheduler=False,  # one scheduler process per replica instead, see run_scheduler_process
            logging_level=settings.log_level.upper(),
        )
    finally:
        WORKER_PROCESSES.dec()
        memory_updates.set()
        ctx.close()
        process_exited(os.getpid())
    return 0


def lower_cpu_priority(nice: int) -> int:
    """Make this process at least ``nice``; never raise its priority (that needs privileges). Parses are
    batch work: on a host the api shares, a status poll should get the CPU before a queued parse does
    (`schedgen loadtest stress`, docs/PERFORMANCE.md). Under Linux's autogroups this orders processes of
    one session (one supervisord, one container); across containers the runtime's CPU weights decide."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice > current:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    return max(nice, current)


def run_scheduler_process() -> int:
    """Move due retries (RQ's scheduled registry) onto their queues until SIGTERM.

    RQ can fork a scheduler from each worker, but a forked child inherits the worker's Postgres sockets
    and outlives a SIGKILLed worker, keeping its job locks alive; a separate process has neither problem.
    Several replicas may run one: RQ's per-queue scheduler locks let one of them work at a time.
    """
    from rq.scheduler import RQScheduler

    from schedgen_ops.service.config import load_settings
    from schedgen_ops.service.logs import setup_logging
    from schedgen_ops.service.queue import QUEUE_NAMES, redis_client

    settings = load_settings(need=("redis_url",))
    setup_logging(settings.log_level, "scheduler")
    scheduler = RQScheduler(list(QUEUE_NAMES), connection=redis_client(settings), interval=1)
    scheduler.work()
    return 0


def _spawn(burst: bool, *, scheduler: bool = False) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "schedgen_ops.service.worker"]
    if scheduler:
        argv.append("--scheduler")
    elif burst:
        argv.append("--burst")
    return subprocess.Popen(argv)


def supervise(settings: ServiceSettings, *, processes: int, burst: bool, reconcile: bool) -> int:
    """Keep ``processes`` worker processes running (restart on exit) until SIGTERM/SIGINT.

    With ``burst`` each process drains the queues and exits, and so does the supervisor.
    """
    from schedgen_ops.service.metrics import process_exited

    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    _serve_metrics(settings.worker_metrics_port)
    reconciler_thread = _start_reconciler(settings, stop) if reconcile else None

    children = [_spawn(burst) for _ in range(processes)]
    scheduler = None if burst else _spawn(False, scheduler=True)
    log.info("worker processes started", extra={"pids": [c.pid for c in children]})
    while not stop.is_set():
        if scheduler is not None and scheduler.poll() is not None:
            log.info("scheduler process exited; restarting", extra={"exit_code": scheduler.returncode})
            time.sleep(1.0)
            scheduler = _spawn(False, scheduler=True)
        for index, child in enumerate(children):
            code = child.poll()
            if code is None:
                continue
            process_exited(child.pid)
            if burst:
                continue
            log.info("worker process exited; restarting", extra={"pid": child.pid, "exit_code": code})
            if code != 0:
                time.sleep(1.0)  # crash loop guard (e.g. Postgres down at start-up)
            children[index] = _spawn(burst)
        if burst and all(child.poll() is not None for child in children):
            break
        stop.wait(0.2)

    if scheduler is not None:
        children.append(scheduler)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # RQ: finish the current job, then exit
    deadline = time.monotonic() + settings.job_timeout_s + 10
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        process_exited(child.pid)
    stop.set()
    if reconciler_thread is not None:
        reconciler_thread.join(timeout=10)
    failed = [child.returncode for child in children if child.returncode not in (0, None)]
    return 1 if burst and failed else 0


def _serve_metrics(port: int) -> None:
    if not port:
        return
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    try:
        start_http_server(port, addr="0.0.0.0", registry=registry)
    except OSError as exc:
        raise SchedgenError(
            f"cannot serve worker metrics on port {port}: {exc.strerror}",
            code="port_in_use",
            hint="set SCHEDGEN_WORKER_METRICS_PORT to a free port, or 0 to disable",
        ) from exc


def _start_reconciler(settings: ServiceSettings, stop: threading.Event) -> threading.Thread:
    from schedgen_ops.service.context import ServiceContext
    from schedgen_ops.service.reconciler import run_forever

    ctx = ServiceContext.create(settings, name="reconciler")

    def _run() -> None:
        try:
            run_forever(ctx, stop)
        finally:
            ctx.close()

    thread = threading.Thread(target=_run, name="reconciler", daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":
    try:
        if "--scheduler" in sys.argv[1:]:
            sys.exit(run_scheduler_process())
        sys.exit(run_worker_process(burst="--burst" in sys.argv[1:]))
    except SchedgenError as exc:
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(1)
