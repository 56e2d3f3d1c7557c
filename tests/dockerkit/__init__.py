"""Test-side Docker infrastructure: a running engine, the compose plugin and locally built images.

No image registry is reachable from our build machines, so every image the tests run is built here from a
debootstrap Debian base (see images.py); the engine itself is started by the tests when needed (engine.py).
"""

from __future__ import annotations

from .engine import ensure_compose_plugin, require_docker
from .images import base_image, standin_image

__all__ = ["base_image", "ensure_compose_plugin", "require_docker", "standin_image"]
