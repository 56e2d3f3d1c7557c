"""The service image's Dockerfile (checked as text: no Docker engine here) and its python HEALTHCHECK."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from stackkit import Stack

from schedgen_ops.runtime.dataservices import free_port

REPO = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_is_slim_non_root_with_a_python_healthcheck() -> None:
    steps = _instructions()
    froms = [arg for op, arg in steps if op == "FROM"]
    assert froms and all(arg.split()[0] == "python:3.11-slim" for arg in froms)
    users = [arg for op, arg in steps if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    health = [arg for op, arg in steps if op == "HEALTHCHECK"]
    assert len(health) == 1 and '"python", "-m", "schedgen_ops.service.healthcheck"' in health[0]
    assert not any(tool in health[0] for tool in ("curl", "wget"))
    assert ("ENTRYPOINT", '["schedgen"]') in steps  # one image: the command picks api or worker
    ignored = (REPO / ".dockerignore").read_text()
    assert ignored.splitlines()[1] == "**"  # allow-list: no .git, .venv or secrets in the context


def test_healthcheck_module_exit_codes(service_stack: Callable[..., Stack]) -> None:
    stack = service_stack()

    def run(url: str) -> int:
        return subprocess.run(
            [sys.executable, "-m", "schedgen_ops.service.healthcheck", url], capture_output=True, timeout=30
        ).returncode

    assert run(f"{stack.base_url}/healthz") == 0
    assert run(f"http://127.0.0.1:{free_port()}/healthz") == 1
