"""The run's API keys, one per simulated client: minted over HTTP by the api, or created in its database.

Each simulated client sends its own key, so the service's per-client rate limits stay on during the
test and are neither defeated (one shared unlimited key) nor tripped by the test itself (everyone
behind one address). Keys are grouped under a label ``loadtest-<scenario>-<run>`` and revoked when the
run ends; they also expire on their own, so a run killed before it revokes leaves nothing usable behind.

Two sources, chosen by `key_provider`:

- `EndpointKeys` (preferred, given the ops token): ``POST /api/ops/loadtest-keys`` in batches, revoked with
  ``DELETE /api/ops/loadtest-keys/{label}``. Needs nothing but HTTP to the api, which is all CI has of
  a staging stack.
- `DatabaseKeys` (fallback, given only the database URL): rows written with the service's own `create_key`.
"""

from __future__ import annotations

import configparser
import math
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import httpx
import psycopg

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.clients import (
    LOADTEST_MAX_COUNT,
    LOADTEST_TTL_MAX_S,
    LOADTEST_TTL_MIN_S,
    create_key,
)

MINT_PATH = "/api/ops/loadtest-keys"
#: Keys outlive the planned run by this much (seeding, drain, locust's stop timeout, a slow start).
TTL_MARGIN_S = 600
_RETRY_STATUSES = (429, 502, 503, 504)
_ATTEMPTS = 4

NO_KEY_SOURCE_HINT = (
    "pass --ops-token (or set SCHEDGEN_OPS_TOKEN) to mint them through the api's "
    "POST /api/ops/loadtest-keys, or --database-url (SCHEDGEN_DATABASE_URL) to create them in the "
    "service database; with --target local both are read from the project's stack"
)


class KeyProvider(Protocol):
    """Creates the run's keys and revokes them afterwards (`revoke` is safe to call at any point)."""

    label: str
    source: str

    def create(self, count: int, name: str, ttl_s: int) -> list[str]: ...

    def revoke(self) -> int: ...


def key_ttl_s(planned_duration_s: float) -> int:
    """Lifetime of the run's keys: the planned run plus a margin, within the endpoint's bounds."""
    wanted = math.ceil(planned_duration_s) + TTL_MARGIN_S
    return max(LOADTEST_TTL_MIN_S, min(LOADTEST_TTL_MAX_S, wanted))


def _new_label(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}"


class DatabaseKeys:
    """The keys of one run, in the database at ``database_url`` (the fallback without an ops token)."""

    source = "database"

    def __init__(self, database_url: str) -> None:
        if not database_url:
            raise SchedgenError(
                "no database URL to create the run's API keys in",
                code="no_key_source",
                hint=NO_KEY_SOURCE_HINT,
            )
        self.database_url = database_url
        self.label = ""

    def create(self, count: int, name: str, ttl_s: int) -> list[str]:
        """Create ``count`` keys labelled ``name-<run id>`` in one transaction; returns the full keys.

        Where the schema has key expiry (migration 0003), the keys get ``ttl_s`` and the label too, so
        they expire like minted ones and the revoke endpoint can also clean them up.
        """
        self.label = _new_label(name)
        keys: list[str] = []
        try:
            with psycopg.connect(self.database_url, connect_timeout=5) as conn, conn.transaction():
                while len(keys) < count:
                    try:
                        with conn.transaction():
                            keys.append(create_key(conn, self.label)[1])
                    except psycopg.errors.UniqueViolation:
                        continue  # the short public key id collided: draw another
                if _has_expiry(conn):
                    conn.execute(
                        "UPDATE api_keys SET expires_at = now() + make_interval(secs => %s),"
                        " loadtest_label = name WHERE name = %s AND revoked_at IS NULL",
                        (ttl_s, self.label),
                    )
        except psycopg.OperationalError as exc:
            raise SchedgenError(
                f"cannot reach the service database to create API keys: {_first_line(exc)}",
                code="no_database",
                hint="check SCHEDGEN_DATABASE_URL / the stack's Postgres, or pass --ops-token to mint the "
                "keys through the api instead",
            ) from exc
        return keys

    def revoke(self) -> int:
        """Revoke the run's keys (they are only for this run)."""
        if not self.label:
            return 0
        try:
            with psycopg.connect(self.database_url, connect_timeout=5) as conn:
                cur = conn.execute(
                    "UPDATE api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL",
                    (self.label,),
                )
                return cur.rowcount
        except psycopg.Error as exc:
            raise SchedgenError(
                f"cannot revoke the run's API keys ({self.label}): {_first_line(exc)}", code="revoke_failed"
            ) from exc


def _has_expiry(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'api_keys'"
        " AND column_name IN ('expires_at', 'loadtest_label') AND table_schema = current_schema()"
    ).fetchone()
    return bool(row and row[0] == 2)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class EndpointKeys:
    """The keys of one run, minted by the api itself through its ops endpoint (needs only HTTP).

    Counts above the endpoint's per-call limit are minted in several calls under one label, so one
    DELETE revokes them all. With ``fallback`` set, an api that predates the endpoint (404) is served
    from the database instead of failing the run.
    """

    source = "api"

    def __init__(
        self,
        url: str,
        ops_token: str,
        *,
        fallback: DatabaseKeys | None = None,
        timeout_s: float = 30.0,
        progress: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.url = url
        self.label = ""
        self.expires_at = ""
        self.fallback = fallback
        self.progress = progress
        self._delegate: DatabaseKeys | None = None
        self._ops_token = ops_token
        self._timeout_s = timeout_s
        self._http: httpx.Client | None = None  # opened by `create`, closed by `revoke`
        self._minted = 0
        self._unanswered = False  # a mint call got no answer: keys may exist, so revoke anyway

    def create(self, count: int, name: str, ttl_s: int) -> list[str]:
        """Mint ``count`` keys valid for ``ttl_s`` seconds, in calls of at most the endpoint's limit."""
        self.label = _new_label(name)
        self._http = httpx.Client(
            base_url=self.url,
            timeout=self._timeout_s,
            headers={"Authorization": f"Bearer {self._ops_token}"},
        )
        keys: list[str] = []
        while len(keys) < count:
            batch = min(LOADTEST_MAX_COUNT, count - len(keys))
            body = {"count": batch, "ttl_s": ttl_s, "label": self.label}
            self._unanswered = True
            response = self._call("POST", MINT_PATH, json=body)
            self._unanswered = False
            if response.status_code in (404, 405) and not keys and self.fallback is not None:
                self.progress(
                    f"the api at {self.url} has no {MINT_PATH} (older version); "
                    "creating the keys in its database instead"
                )
                self._delegate = self.fallback
                self.source = self.fallback.source
                keys = self._delegate.create(count, name, ttl_s)
                self.label = self._delegate.label
                return keys
            if response.status_code != 201:
                raise self._refused("mint the run's API keys", response)
            minted = response.json()
            keys.extend(minted["keys"])
            self._minted = len(keys)
            self.expires_at = str(minted.get("expires_at", ""))
        return keys

    def revoke(self) -> int:
        """Revoke every key of the run's label (one call, however many were minted)."""
        try:
            if self._delegate is not None:
                return self._delegate.revoke()
            if self._http is None or not (self._minted or self._unanswered):
                return 0  # nothing was minted (e.g. the token was refused): nothing to revoke
            response = self._call("DELETE", f"{MINT_PATH}/{self.label}")
            if response.status_code != 200:
                raise self._refused(f"revoke the run's API keys ({self.label})", response)
            return int(response.json().get("revoked", 0))
        finally:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        """One request, retried briefly when the api is busy or restarting (429/5xx, connection errors)."""
        assert self._http is not None
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                response = self._http.request(method, path, **kwargs)  # type: ignore[arg-type]
            except httpx.HTTPError as exc:
                if attempt == _ATTEMPTS:
                    raise SchedgenError(
                        f"cannot reach {self.url}{path}: {_first_line(exc) or type(exc).__name__}",
                        code="api_unreachable",
                        hint=self._expiry_hint() or "check that the api is running",
                    ) from exc
                time.sleep(attempt * 0.5)
                continue
            if response.status_code not in _RETRY_STATUSES or attempt == _ATTEMPTS:
                return response
            time.sleep(min(10.0, _retry_after(response, default=attempt * 0.5)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _refused(self, what: str, response: httpx.Response) -> SchedgenError:
        try:
            error = response.json().get("error", {})
            detail = f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
        except (ValueError, AttributeError):
            detail = response.text[:200]
        status = response.status_code
        if status == 401:
            hint = (
                "pass the token the api runs with (its SCHEDGEN_OPS_TOKEN) via --ops-token, "
                "or use --target local to read it from the project"
            )
        elif status in (404, 405):
            hint = (
                "upgrade the api, or give only --database-url (no ops token) to create the keys in its "
                "database"
            )
        else:
            hint = self._expiry_hint() or "check the api logs"
        return SchedgenError(
            f"the api at {self.url} refused to {what}: {status} {detail}".rstrip(),
            code="ops_keys_refused",
            hint=hint,
        )

    def _expiry_hint(self) -> str:
        if self.label and self.expires_at:
            return f"keys already minted for {self.label} expire on their own at {self.expires_at}"
        return ""


def _retry_after(response: httpx.Response, *, default: float) -> float:
    try:
        return float(response.headers.get("retry-after", default))
    except ValueError:
        return default


def project_ops_token(target: str | None, project_dir: Path) -> str:
    """The ops token of the project's stack, found where `--target` finds its database URL.

    ``local`` with a deployed stack: the secrets the running api was started with; otherwise the
    project's ``.schedgen/secrets.env`` (``OPS_TOKEN``, what `schedgen render` deploys). Empty when
    there is no target or no project; a secrets file other users can read is an error, as everywhere.
    """
    if target is None:
        return ""
    if target == "local":
        from schedgen_ops.runtime.local import LocalRuntime

        runtime = LocalRuntime(project_dir)
        if runtime.active.exists():
            try:
                token = runtime.secrets().get("SCHEDGEN_OPS_TOKEN", "")
            except (OSError, ValueError, KeyError, SchedgenError, configparser.Error):
                token = ""
            if token:
                return token
    from schedgen_ops.config.secrets import load_secrets, secrets_path

    if not secrets_path(project_dir).is_file():
        return ""
    return load_secrets(project_dir).get("OPS_TOKEN", "")


def key_provider(
    url: str,
    *,
    ops_token: str,
    database_url: str,
    progress: Callable[[str], None] = lambda message: None,
) -> KeyProvider:
    """The ops endpoint when there is a token (the database as its fallback), else the database."""
    if ops_token:
        fallback = DatabaseKeys(database_url) if database_url else None
        return EndpointKeys(url, ops_token, fallback=fallback, progress=progress)
    if database_url:
        return DatabaseKeys(database_url)
    raise SchedgenError(
        "no way to create the run's API keys: no ops token and no database URL",
        code="no_key_source",
        hint=NO_KEY_SOURCE_HINT,
        exit_code=2,
    )
