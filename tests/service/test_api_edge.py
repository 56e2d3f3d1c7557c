"""What the api shows whoever reaches it: a cached /readyz that names no host, and no docs by default."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable

from stackkit import Stack

from schedgen_ops.runtime.dataservices import free_port

DOC_PATHS = ("/docs", "/redoc", "/openapi.json")


def _failures_logged(stack: Stack) -> int:
    assert stack.api is not None
    return sum(
        1
        for line in stack.api.output().splitlines()
        if '"readiness check failed"' in line and '"storage"' in line
    )


def test_readyz_is_cached_for_a_second_and_shows_only_stable_words(
    service_stack: Callable[..., Stack],
) -> None:
    stack = service_stack()
    assert stack.client.get("/readyz").status_code == 200
    uploads = stack.workdir / "uploads"
    shutil.rmtree(uploads)  # storage breaks now...
    assert stack.client.get("/readyz").status_code == 200  # ...but the answer of the last second stands
    time.sleep(1.1)
    broken = stack.client.get("/readyz")
    assert broken.status_code == 503
    checks = broken.json()["checks"]
    assert checks["storage"] == {**checks["storage"], "ok": False, "detail": "unavailable"}
    assert checks["postgres"]["detail"] == "ok" and checks["redis"]["detail"] == "ok"
    assert str(uploads) not in broken.text and "upload directory" not in broken.text
    # A flood of probes reaches the dependencies about once a second, not once per probe.
    before, started = _failures_logged(stack), time.monotonic()
    answers = [stack.client.get("/readyz").status_code for _ in range(40)]
    elapsed = time.monotonic() - started
    time.sleep(0.2)  # let the log line of a check still running land
    checks_run = _failures_logged(stack) - before
    assert answers == [503] * 40
    assert checks_run <= int(elapsed / 1.0) + 2, f"{checks_run} checks for 40 probes in {elapsed:.1f}s"
    uploads.mkdir()
    deadline = time.monotonic() + 10
    while stack.client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "readiness did not recover"
        time.sleep(0.2)


def test_readyz_and_docs_show_strangers_nothing(service_stack: Callable[..., Stack]) -> None:
    """/readyz names no host, user or error text; the docs and schema are off by default (they are on
    with ``SCHEDGEN_API_DOCS=true``: the schemathesis tests load /openapi.json that way)."""
    closed = free_port()
    stack = service_stack(
        SCHEDGEN_DATABASE_URL=f"postgresql://leakuser:leakpass@127.0.0.1:{closed}/leakdb",
        SCHEDGEN_REDIS_URL=f"redis://:leakpass@127.0.0.1:{closed}/0",
        SCHEDGEN_READINESS_TIMEOUT_S="1",
    )
    response = stack.client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert {name: check["detail"] for name, check in body["checks"].items()} == {
        "postgres": "unavailable",
        "redis": "unavailable",
        "storage": "ok",
    }
    text = json.dumps(body)
    for secret in ("127.0.0.1", str(closed), "leakuser", "leakpass", "leakdb", "refused", "Error"):
        assert secret not in text, secret
    for path in DOC_PATHS:
        hidden = stack.client.get(path)
        assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found", path
    # The operator still gets the real reason, in the api's log.
    assert stack.api is not None
    log = stack.api.output()
    assert '"readiness check failed"' in log and "refused" in log.lower()
