"""What a rendered tree says to the local runtime, read from the files render wrote into ``local/``.

supervisord.conf names the program slots of each service and colour; ``render.json`` the rendered
facts (each program's port, default replica counts); the Caddyfile holds the front door's site
address; ``secrets/*.env`` the credentials.
"""

from __future__ import annotations

import json
import re
from configparser import RawConfigParser
from pathlib import Path
from typing import Any

from schedgen_ops.config.secrets import parse_env_file
from schedgen_ops.errors import SchedgenError


class LocalTree:
    """One rendered tree (a release's ``tree/``, or the ``run/active`` link to it); nothing is cached."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def conf_path(self) -> Path:
        return self.root / "local" / "supervisord.conf"

    def conf(self) -> RawConfigParser:
        """supervisord.conf parsed (empty when the tree has none)."""
        parser = RawConfigParser(strict=False)
        parser.read(self.conf_path)
        return parser

    def slots(self, service: str, colour: str) -> list[str]:
        """Program names of a service's slots of one colour, in slot order."""
        parser = self.conf()
        section = f"group:{service}-{colour}"
        if not parser.has_section(section):
            return []
        programs = [p.strip() for p in parser.get(section, "programs").split(",") if p.strip()]
        return sorted(programs, key=lambda p: int(p.rsplit("-", 1)[1]))

    def port(self, program: str) -> int:
        """The port a program listens on, as render recorded it (render.json ``local_ports``).

        A tree rendered by an earlier schedgen has no ``local_ports``; its ports are read from the
        program's command instead, so a stack running such a tree can still be reached, switched away
        from by the next deploy, or rolled back to.
        """
        ports = self.facts().get("local_ports")
        if ports is None:
            return self._legacy_port(program)
        if program not in ports:
            raise SchedgenError(f"no port in the {program} command of {self.root}", code="bad_tree")
        return int(ports[program])

    def _legacy_port(self, program: str) -> int:
        """The ``-p N`` / ``--port N`` of a program's command: trees rendered before render.json's ports."""
        conf = self.conf()
        section = f"program:{program}"
        command = conf.get(section, "command") if conf.has_section(section) else ""
        match = re.search(r"(?:-p|--port) (\d+)", command)
        if not match:
            raise SchedgenError(
                f"no port for {program} in {self.root}: neither render.json nor its command names one",
                code="bad_tree",
                hint="deploy again: `schedgen deploy --target local` renders a fresh tree",
            )
        return int(match.group(1))

    def environment(self, program: str) -> str:
        """A program's ``environment=`` line, with supervisord's ``%%`` escapes undone."""
        return self.conf().get(f"program:{program}", "environment").replace("%%", "%")

    def public_url(self) -> str:
        """The front door's address, as render recorded it (render.json ``public_url``)."""
        recorded = self.facts().get("public_url")
        return str(recorded) if recorded else self._legacy_public_url()

    def _legacy_public_url(self) -> str:
        """The loopback site of the Caddyfile's first site line (else its first): trees rendered before
        render.json recorded the address."""
        text = (self.root / "local" / "Caddyfile").read_text(encoding="utf-8")
        line = next((ln for ln in text.splitlines() if re.match(r"https?://", ln)), "")
        sites = re.findall(r"(https?)://([^\s,{]*?):(\d+)", line)
        if not sites:
            raise SchedgenError(f"no site address in {self.root}/local/Caddyfile", code="bad_tree")
        scheme, host, port = next((s for s in sites if s[1] == "127.0.0.1"), sites[0])
        return f"{scheme}://{host or '127.0.0.1'}:{port}"

    def secret_file(self, stem: str) -> dict[str, str]:
        """The values of ``local/secrets/<stem>.env``."""
        path = self.root / "local" / "secrets" / f"{stem}.env"
        return parse_env_file(path.read_text(encoding="utf-8"))

    def facts(self) -> dict[str, Any]:
        """render.json's facts (none for a tree rendered without them)."""
        path = self.root / "render.json"
        return dict(json.loads(path.read_text()).get("facts", {})) if path.exists() else {}

    def default_replicas(self) -> dict[str, int]:
        """The rendered replica counts, before any `schedgen scale`."""
        facts = self.facts()
        return {
            "api": int(facts.get("api_replicas", 1)),
            "pdf-worker": int(facts.get("worker_replicas", 1)),
        }
