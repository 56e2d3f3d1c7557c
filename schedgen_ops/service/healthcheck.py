"""Container HEALTHCHECK without curl/wget: ``python -m schedgen_ops.service.healthcheck [URL]``.

Exit 0 when the URL answers 2xx within the timeout, else 1. The URL defaults to
``SCHEDGEN_HEALTHCHECK_URL`` or the api's /healthz; worker containers point it at their metrics port.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


def check(url: str, timeout_s: float = 3.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    url = argv[0] if argv else os.environ.get("SCHEDGEN_HEALTHCHECK_URL", DEFAULT_URL)
    ok = check(url)
    print(f"{'healthy' if ok else 'unhealthy'}: {url}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
