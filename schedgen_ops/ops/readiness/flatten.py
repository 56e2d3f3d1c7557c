"""Flatten Traefik configuration from every place it can live into one dotted-key view.

Traefik reads the same settings from YAML/TOML files, CLI flags (``--entrypoints.web.address=:80``) and
container labels (``traefik.http.routers.api.tls=true``); the checks search one lowercase dotted map.
"""

from __future__ import annotations

import tomllib
from typing import Any

from schedgen_ops.ops.readiness.inspect import role
from schedgen_ops.ops.readiness.tree import RenderedTree, keyed


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}".lower() if prefix else str(key).lower()))
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix] = value
    return out


def traefik_settings(tree: RenderedTree, *, compose: bool) -> dict[str, tuple[str, Any]]:
    """dotted key -> (file, value) from traefik/ files, and when ``compose``, flags and labels."""
    out: dict[str, tuple[str, Any]] = {}
    for rel in tree.scoped("traefik", "**/*"):
        if rel.endswith((".yml", ".yaml")):
            docs = tree.docs(rel)
        elif rel.endswith(".toml"):
            docs = [tomllib.loads(tree.text(rel))]
        else:
            continue
        for doc in docs:
            for key, value in flatten(doc).items():
                out[key] = (rel, value)
    if compose and tree.has_compose:
        for name, svc in tree.services().items():
            svc = svc or {}
            origin = tree.compose_origin("services", name)
            if role(name, str(svc.get("image", ""))) == "proxy":
                command = svc.get("command") or []
                for arg in command.split() if isinstance(command, str) else command:
                    arg = str(arg)
                    if arg.startswith("--"):
                        key, _, value = arg[2:].partition("=")
                        out[key.lower()] = (origin, value or True)
            for key, value in keyed(svc.get("labels")).items():
                if key.lower().startswith("traefik."):
                    out[key.lower().removeprefix("traefik.")] = (origin, value)
    return out
