"""How `schedgen health --target compose` reaches a stack that publishes none of its data services.

The live release's rendered secrets name Postgres, Redis and the api by their compose host names; this
opens a `docker exec` relay (schedgen_ops.runtime.tunnel) into a running api container for each of them
and points the endpoints at the relays' 127.0.0.1 ports for as long as the command runs. URLs given
explicitly (--url, --database-url, --redis-url) are left alone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from schedgen_ops.config.model import Config
from schedgen_ops.config.secrets import parse_env_file
from schedgen_ops.ops.health.endpoints import Endpoints
from schedgen_ops.runtime.engine import DockerEngine
from schedgen_ops.runtime.locate import locate
from schedgen_ops.runtime.tunnel import tunnels


def _with_local_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def reach_compose(
    project: Path, config: Config, endpoints: Endpoints, *, explicit: Mapping[str, str | None]
) -> Iterator[None]:
    """Relays for the URLs not given explicitly; a note instead when no api container runs."""
    location = locate(project)
    if location.tree is None or location.target != "compose":
        endpoints.notes["api_url"] = "no live compose release (`schedgen deploy --target compose`)"
        yield
        return
    try:
        containers = DockerEngine().containers(config.name)
    except Exception as exc:  # the engine's own error text is the most useful hint here
        endpoints.notes["api_url"] = f"the Docker engine did not answer: {exc}"
        yield
        return
    api = next((c for c in containers if c.service == "api" and c.state == "running"), None)
    if api is None:
        endpoints.notes["api_url"] = "no running api container to reach the stack through"
        yield
        return
    secrets = parse_env_file((location.tree / "compose" / "secrets" / "app.env").read_text())
    wanted: dict[str, tuple[str, int]] = {}
    if not explicit.get("api_url"):
        wanted["api_url"] = ("127.0.0.1", config.ports.api)
    for name, key in (("database_url", "SCHEDGEN_DATABASE_URL"), ("redis_url", "SCHEDGEN_REDIS_URL")):
        if not explicit.get(name) and secrets.get(key):
            parts = urlsplit(secrets[key])
            wanted[name] = (parts.hostname or name, parts.port or 0)
    with tunnels(api.id, wanted) as ports:
        for name, port in ports.items():
            if name == "api_url":
                endpoints.api_url = f"http://127.0.0.1:{port}"
            else:
                key = "SCHEDGEN_DATABASE_URL" if name == "database_url" else "SCHEDGEN_REDIS_URL"
                setattr(endpoints, name, _with_local_port(secrets[key], port))
            endpoints.notes.pop(name, None)
        yield
