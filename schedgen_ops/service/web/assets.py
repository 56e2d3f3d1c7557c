"""Static assets served under content-hashed names, so they can be cached for a year.

The files ship inside the package (web/static); the URL carries the first 12 hex digits of the
file's sha256, so a new release never serves a stale script from a browser's or proxy's cache.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
CACHE_FOREVER = "public, max-age=31536000, immutable"
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


@dataclass(frozen=True)
class Asset:
    name: str  # hashed, e.g. app.3f2a9c1b0d4e.js
    body: bytes
    media_type: str


@cache
def assets() -> dict[str, Asset]:
    """Hashed name -> asset, for every file of web/static (read once per process)."""
    found: dict[str, Asset] = {}
    for path in sorted(STATIC_DIR.iterdir()):
        if not path.is_file() or path.suffix not in MEDIA_TYPES:
            continue
        body = path.read_bytes()
        digest = hashlib.sha256(body).hexdigest()[:12]
        hashed = f"{path.stem}.{digest}{path.suffix}"
        found[hashed] = Asset(hashed, body, MEDIA_TYPES[path.suffix])
    return found


@cache
def url_for(filename: str) -> str:
    """``/static/<hashed name>`` of a file of web/static (KeyError for one that does not exist)."""
    stem, _, suffix = filename.rpartition(".")
    for name in assets():
        if name.startswith(stem + ".") and name.endswith("." + suffix) and name.count(".") == 2:
            return f"/static/{name}"
    raise KeyError(f"no static asset {filename!r} in {STATIC_DIR}")
