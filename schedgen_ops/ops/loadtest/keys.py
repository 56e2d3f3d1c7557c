"""Create the run's API keys in the service's database: one per simulated client.

Each simulated client sends its own key, so the service's per-client rate limits stay on during the
test and are neither defeated (one shared unlimited key) nor tripped by the test itself (everyone
behind one address). Keys are named ``loadtest-<scenario>-<run>`` and revoked when the run ends.
"""

from __future__ import annotations

import secrets

import psycopg

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.clients import create_key


class RunKeys:
    """The keys of one run, in the database at ``database_url``."""

    def __init__(self, database_url: str) -> None:
        if not database_url:
            raise SchedgenError(
                "no database URL to create the run's API keys in",
                code="no_database",
                hint="set SCHEDGEN_DATABASE_URL (or use --target with a project) so each simulated client "
                "gets its own key",
            )
        self.database_url = database_url
        self.label = ""

    def create(self, count: int, name: str) -> list[str]:
        """Create ``count`` keys named ``name-<run id>`` in one transaction; returns the full keys."""
        self.label = f"{name}-{secrets.token_hex(3)}"
        keys: list[str] = []
        try:
            with psycopg.connect(self.database_url, connect_timeout=5) as conn, conn.transaction():
                while len(keys) < count:
                    try:
                        with conn.transaction():
                            keys.append(create_key(conn, self.label)[1])
                    except psycopg.errors.UniqueViolation:
                        continue  # the short public key id collided: draw another
        except psycopg.OperationalError as exc:
            raise SchedgenError(
                f"cannot reach the service database to create API keys: {str(exc).strip().splitlines()[0]}",
                code="no_database",
                hint="check SCHEDGEN_DATABASE_URL / the stack's Postgres",
            ) from exc
        return keys

    def revoke(self) -> int:
        """Revoke the run's keys (they are only for this run)."""
        if not self.label:
            return 0
        with psycopg.connect(self.database_url, connect_timeout=5) as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (self.label,)
            )
            return cur.rowcount
