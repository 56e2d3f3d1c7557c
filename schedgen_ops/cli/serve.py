"""`schedgen serve api|worker|reconciler`: run the parsing service's processes."""

from __future__ import annotations

import json
import os

import typer

from schedgen_ops.errors import SchedgenError

serve_app = typer.Typer(help="Run the parsing service: api, workers, reconciler.", no_args_is_help=True)


def _settings(component: str):  # type: ignore[no-untyped-def]
    from schedgen_ops.service.config import load_settings

    settings = load_settings()
    # prometheus_client picks multiprocess mode at import time: set the directory before any import.
    from schedgen_ops.service import metrics_dir

    metrics_dir.prepare(settings.metrics_dir, component=component)
    return settings


@serve_app.command("api")
def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to bind."),
    workers: int | None = typer.Option(
        None, "--workers", min=1, help="uvicorn worker processes (default: SCHEDGEN_API_WORKERS)."
    ),
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn); applies pending migrations at start-up."""
    settings = _settings("api")
    import uvicorn

    from schedgen_ops.service.logs import setup_logging

    setup_logging(settings.log_level, "api")
    uvicorn.run(
        "schedgen_ops.service.app:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers or settings.api_workers,
        proxy_headers=False,  # the client IP comes from our trusted-proxy logic, not uvicorn's
        server_header=False,
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=max(1, round(settings.http_keep_alive_s)),
    )


@serve_app.command("worker")
def worker(
    processes: int | None = typer.Option(
        None, "--processes", min=1, help="Worker processes (default: SCHEDGEN_WORKER_PROCESSES)."
    ),
    burst: bool = typer.Option(False, "--burst", help="Drain the queues, then exit."),
    reconcile: bool = typer.Option(True, "--reconcile/--no-reconcile", help="Run the reconciler loop here."),
) -> None:
    """Run RQ worker processes (restarted after SCHEDGEN_WORKER_MAX_JOBS jobs) and the reconciler."""
    settings = _settings("worker")
    from schedgen_ops.service.logs import setup_logging
    from schedgen_ops.service.worker import supervise

    setup_logging(settings.log_level, "worker")
    code = supervise(
        settings, processes=processes or settings.worker_processes, burst=burst, reconcile=reconcile
    )
    raise typer.Exit(code)


@serve_app.command("reconciler")
def reconciler(
    once: bool = typer.Option(False, "--once", help="Run one pass, print what it did, exit."),
    as_json: bool = typer.Option(False, "--json", help="With --once: print the report as JSON."),
) -> None:
    """Re-enqueue queued jobs Redis lost, recover jobs of dead workers, fail stuck ones, purge expired."""
    settings = _settings("reconciler")
    from schedgen_ops.service import db
    from schedgen_ops.service.context import ServiceContext
    from schedgen_ops.service.logs import setup_logging
    from schedgen_ops.service.reconciler import reconcile_once, run_forever

    setup_logging(settings.log_level, "reconciler")
    db.migrate(settings.database_url.get_secret_value())
    ctx = ServiceContext.create(settings, name="reconciler")
    try:
        if once:
            report = reconcile_once(ctx)
            if as_json:
                typer.echo(json.dumps(report.as_dict()))
            else:
                typer.echo(
                    f"requeued {len(report.requeued)}, recovered {len(report.recovered)}, "
                    f"failed {len(report.failed)}, purged {report.purged}"
                )
            return
        import signal
        import threading

        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        run_forever(ctx, stop)
    except OSError as exc:
        raise SchedgenError(f"reconciler failed: {exc}", code="reconciler_failed") from exc
    finally:
        ctx.close()
        os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


def register(app: typer.Typer) -> None:
    app.add_typer(serve_app, name="serve", help="Run the parsing service: api, workers, reconciler.")
