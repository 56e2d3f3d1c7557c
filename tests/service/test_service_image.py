"""The service image's Dockerfile as text (tests/e2e/test_compose_runtime.py builds and runs it) and its
python HEALTHCHECK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from stackkit import Stack

from schedgen_ops.runtime.dataservices import free_port

REPO = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "container" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_is_slim_non_root_with_a_python_healthcheck() -> None:
    steps = _instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert froms == ["${BASE_IMAGE}"] and ("ARG", "BASE_IMAGE=python:3.11-slim") in steps
    installs = " ".join(arg for op, arg in steps if op == "RUN")
    assert "--no-index" in installs and "venv" in installs  # no network inside the build
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [arg for op, arg in steps if op == "HEALTHCHECK"]
    assert len(health) == 1 and '"python", "-m", "schedgen_ops.service.healthcheck"' in health[0]
    assert not any(tool in health[0] for tool in ("curl", "wget"))
    assert not [op for op, _ in steps if op == "ENTRYPOINT"]  # compose gives every service its command
    assert ("CMD", '["schedgen", "serve", "api", "--host", "0.0.0.0", "--port", "8000"]') in steps


def test_healthcheck_module_exit_codes(service_stack: Callable[..., Stack]) -> None:
    stack = service_stack()

    def run(url: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "schedgen_ops.service.healthcheck", url], capture_output=True, timeout=30
        ).returncode

    assert run(f"{stack.base_url}/healthz") == 0
    assert run(f"http://127.0.0.1:{free_port()}/healthz") == 1
