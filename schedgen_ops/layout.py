"""Where a project keeps its state: every path under ``.schedgen/``, named once.

A project is a directory with ``schedgen.yaml``; what schedgen makes and keeps for it lives in
``.schedgen/`` beside it (secrets, releases, the running local stack's data, logs and control socket,
the audit log, the deploy lock). Modules ask a `ProjectLayout` for these paths instead of spelling them
out, so moving one is a change here (Tutor's ``env.py`` gives paths the same single home).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

STATE_DIR = ".schedgen"


@dataclass(frozen=True)
class ProjectLayout:
    """The paths of the project in ``project`` (absolute when ``project`` is)."""

    project: Path

    @classmethod
    def of(cls, project: Path) -> ProjectLayout:
        return cls(Path(project))

    @classmethod
    def containing(cls, path: Path) -> ProjectLayout | None:
        """The project whose state directory holds ``path`` (a release tree, a data directory), if any."""
        for parent in (path, *path.parents):
            if parent.name == STATE_DIR:
                return cls(parent.parent)
        return None

    @property
    def state(self) -> Path:
        """``.schedgen/``: everything below is schedgen's, never the user's to edit."""
        return self.project / STATE_DIR

    @property
    def secrets(self) -> Path:
        """The secrets file (mode 0600), made by `schedgen init`."""
        return self.state / "secrets.env"

    @property
    def releases(self) -> Path:
        return self.state / "releases"

    @property
    def audit_log(self) -> Path:
        return self.state / "audit.jsonl"

    @property
    def deploy_lock(self) -> Path:
        return self.state / "deploy.lock"

    @property
    def staging(self) -> Path:
        """Where a deploy renders and validates before anything changes."""
        return self.state / "staging"

    @property
    def compose(self) -> Path:
        """The stable directory the compose stack runs from, refreshed from each release."""
        return self.state / "compose"

    @property
    def checklist_acks(self) -> Path:
        return self.state / "checklist-acks.json"

    # The local runtime's stack.
    @property
    def run(self) -> Path:
        """Control socket, pid file and the active tree's symlink."""
        return self.state / "run"

    @property
    def supervisor_sock(self) -> Path:
        return self.run / "supervisor.sock"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def data(self) -> Path:
        """Postgres, Redis, uploads, metrics, the front door: never touched by deploy or rollback."""
        return self.state / "data"

    @property
    def postgres_data(self) -> Path:
        return self.data / "postgres"

    @property
    def pgbackrest(self) -> Path:
        """The local pgBackRest repository, spool and logs (backup.pitr)."""
        return self.state / "pgbackrest"


#: The secrets file relative to a project directory (error messages and docs name it so).
SECRETS_FILE = Path(STATE_DIR) / "secrets.env"
