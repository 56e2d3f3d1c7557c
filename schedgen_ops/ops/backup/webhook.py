"""Tell someone when a scheduled backup fails: POST a small JSON document to a webhook.

Configured by ``--webhook URL`` or ``SCHEDGEN_BACKUP_WEBHOOK_URL``. A webhook that cannot be reached
is reported on stderr but never hides the original failure (the command still exits non-zero).
"""

from __future__ import annotations

import socket
from typing import Any

from schedgen_ops import __version__
from schedgen_ops.ops.backup.manifest import iso, utcnow

WEBHOOK_ENV = "SCHEDGEN_BACKUP_WEBHOOK_URL"


def failure_payload(command: str, error: str, *, code: str, directory: str) -> dict[str, Any]:
    return {
        "event": "schedgen.backup.failed",
        "command": command,
        "error": error,
        "code": code,
        "host": socket.gethostname(),
        "backup_dir": directory,
        "at": iso(utcnow()),
        "schedgen_version": __version__,
        # Slack/Mattermost-compatible incoming webhooks show `text`.
        "text": f"schedgen {command} failed on {socket.gethostname()}: {error}",
    }


def post_failure(url: str, payload: dict[str, Any], *, timeout_s: float = 10.0) -> str | None:
    """POST the payload; return None on success or a one-line problem that never shows the secret URL."""
    import httpx

    from schedgen_ops.config.secrets import redact_url

    try:
        response = httpx.post(url, json=payload, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"webhook {redact_url(url)} unreachable: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"webhook {redact_url(url)} answered HTTP {response.status_code}"
    return None
