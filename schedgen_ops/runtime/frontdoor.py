"""The local runtime's front door (Caddy): which api replicas it sends traffic to, and graceful reloads.

The rendered Caddyfile imports ``run/frontdoor/upstreams.caddy``; this module writes that file (atomically)
and asks the running Caddy to reload through its admin socket. A Caddy reload keeps the listening socket
and lets the old configuration's in-flight requests finish (grace_period), so switching upstreams drops
no connection. Which colour (blue/green) serves is recorded in ``run/frontdoor/live``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from schedgen_ops.errors import SchedgenError
from schedgen_ops.runtime.runner import Runner

COLOURS = ("blue", "green")
_SOCK_MAX = 100


def other(colour: str) -> str:
    return COLOURS[1] if colour == COLOURS[0] else COLOURS[0]


def find_caddy(path: str | None = None) -> str:
    """The caddy binary on PATH; the error says how to install it."""
    found = shutil.which("caddy", path=path)
    if not found:
        raise SchedgenError(
            "caddy is not installed: the local runtime's front door needs it",
            code="missing_binary",
            hint="apt-get install -y caddy (Debian/Ubuntu), or put a caddy 2.6+ binary on PATH",
        )
    return found


def reload_argv(caddy: str, caddyfile: Path, admin: str) -> list[str]:
    """Graceful reload of the running Caddy with the Caddyfile (and the upstreams file it imports)."""
    return [
        caddy,
        "reload",
        "--config",
        str(caddyfile),
        "--adapter",
        "caddyfile",
        "--address",
        admin,
        "--force",
    ]


def validate_argv(caddy: str, caddyfile: Path) -> list[str]:
    return [caddy, "validate", "--config", str(caddyfile), "--adapter", "caddyfile"]


def upstreams_text(ports: list[int]) -> str:
    """The body imported inside ``reverse_proxy { }``: one ``to`` line (nothing when no replica serves)."""
    if not ports:
        # Caddy needs an upstream; a closed port answers 502 at once instead of a config error.
        return "# no api replica serves: every request gets 502\nto 127.0.0.1:9\n"
    return "to " + " ".join(f"127.0.0.1:{p}" for p in ports) + "\n"


class FrontDoor:
    """State and control of one project's front door."""

    def __init__(self, run_dir: Path, project: Path, runner: Runner):
        self.dir = run_dir / "frontdoor"
        self.project = project
        self.runner = runner

    @property
    def upstreams_file(self) -> Path:
        return self.dir / "upstreams.caddy"

    @property
    def admin_sock(self) -> Path:
        path = self.dir / "admin.sock"
        if len(str(path)) <= _SOCK_MAX:
            return path
        digest = hashlib.sha256(str(self.project).encode()).hexdigest()[:16]
        return Path("/tmp") / f"schedgen-{digest}-caddy.sock"

    @property
    def admin(self) -> str:
        return f"unix/{self.admin_sock}"

    def live(self) -> str:
        with contextlib.suppress(OSError):
            colour = (self.dir / "live").read_text().strip()
            if colour in COLOURS:
                return colour
        return COLOURS[0]

    def set_live(self, colour: str) -> None:
        self._write(self.dir / "live", colour + "\n")

    def ports(self) -> list[int]:
        """The ports the front door currently sends traffic to (from the upstreams file)."""
        with contextlib.suppress(OSError):
            for line in self.upstreams_file.read_text().splitlines():
                if line.startswith("to "):
                    ports = [int(t.rsplit(":", 1)[1]) for t in line.split()[1:]]
                    return [p for p in ports if p != 9]
        return []

    def write_upstreams(self, ports: list[int]) -> bool:
        """Write the upstream list; True when it changed."""
        text = upstreams_text(sorted(ports))
        with contextlib.suppress(OSError):
            if self.upstreams_file.read_text() == text:
                return False
        if self.runner.dry_run:
            self.runner.note(f"front door upstreams -> {', '.join(map(str, sorted(ports))) or 'none'}")
            return True
        self._write(self.upstreams_file, text)
        return True

    def reload(self, caddyfile: Path, env: Mapping[str, str]) -> None:
        """Graceful reload (the Caddyfile is re-read, the listeners kept, in-flight requests finish)."""
        caddy = find_caddy(env.get("PATH"))
        self.runner.run(reload_argv(caddy, caddyfile, self.admin), env=dict(env), timeout_s=60)

    def _write(self, path: Path, text: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
