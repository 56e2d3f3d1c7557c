"""manifest.json: what a backup set holds, how it was made and how it was last verified.

The manifest is the contract with `health` and `checklist` (they read ``status`` and
``verification``); its fields are documented in docs/BACKUP.md. It is rewritten atomically
(temp file + rename, mode 0600) so a reader never sees half a document. ``signature`` authenticates
the rest of it (see signing.py): a manifest is data from wherever the set came from.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from schedgen_ops.errors import SchedgenError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1

#: File names inside a backup set.
POSTGRES_DUMP = "postgres.dump"
POSTGRES_GLOBALS = "postgres-globals.sql"
REDIS_RDB = "redis.rdb"
UPLOADS_TAR = "uploads.tar"
CONFIG_TAR = "config.tar"


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


#: The only file names a backup set holds. A manifest is data from wherever the set came from (a bucket
#: others can write to): a path outside this set, absolute or with ``..``, is refused, never followed.
SET_FILES = frozenset({POSTGRES_DUMP, POSTGRES_GLOBALS, REDIS_RDB, UPLOADS_TAR, CONFIG_TAR})
BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}Z(-\d{1,4})?$")
#: Files and directories of a backup set are private to the user running schedgen.
FILE_MODE = 0o600
DIR_MODE = 0o700


def check_backup_id(value: str) -> str:
    """``value`` when it is a backup id (a UTC timestamp); a usage error otherwise.

    Ids become directory names, S3 keys and database names: anything else (``..``, ``/``, a suffix) is
    refused before it forms a path.
    """
    if not BACKUP_ID_RE.fullmatch(value):
        raise SchedgenError(
            f"{value!r} is not a backup id",
            code="usage",
            hint="ids look like 20261128T023000Z (see `schedgen backup list` where it was taken)",
            exit_code=2,
        )
    return value


class FileEntry(BaseModel):
    path: str
    kind: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    @field_validator("path")
    @classmethod
    def _known_name(cls, value: str) -> str:
        if value not in SET_FILES:
            raise ValueError(f"{value!r} is not a backup set file ({', '.join(sorted(SET_FILES))})")
        return value


class Check(BaseModel):
    name: str
    ok: bool
    detail: str = ""


class Verification(BaseModel):
    status: Literal["passed", "failed"]
    level: Literal["standard", "deep"]
    verified_at: str
    duration_s: float
    checks: list[Check] = Field(default_factory=list)
    schedgen_version: str = ""


class PostgresInfo(BaseModel):
    database: str
    server_version: str
    server_version_num: int
    tables: dict[str, int] = Field(default_factory=dict)
    rows_total: int = 0


class RedisInfo(BaseModel):
    server_version: str | None = None
    keys: int | None = None


class UploadsInfo(BaseModel):
    source: str
    objects: int
    bytes: int


class ConfigInfo(BaseModel):
    files: list[str] = Field(default_factory=list)
    secrets_included: bool = False


class Signature(BaseModel):
    """HMAC-SHA256 over the canonical manifest without this field (signing.py)."""

    alg: Literal["hmac-sha256"] = "hmac-sha256"
    key_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    value: str = Field(pattern=r"^[0-9a-f]{64}$")


class Manifest(BaseModel):
    format: int = FORMAT_VERSION
    id: str = Field(pattern=BACKUP_ID_RE.pattern)
    status: Literal["running", "complete", "failed"]
    error: str | None = None
    reason: str = "manual"
    target: str
    profile: str | None = None
    project: str | None = None
    #: The deployment's `name` (schedgen.yaml): restore refuses a set of another deployment unless --force.
    project_name: str | None = None
    host: str = ""
    started_at: str
    finished_at: str | None = None
    duration_s: float | None = None
    tools: dict[str, str] = Field(default_factory=dict)
    postgres: PostgresInfo | None = None
    redis: RedisInfo | None = None
    uploads: UploadsInfo | None = None
    config: ConfigInfo | None = None
    files: list[FileEntry] = Field(default_factory=list)
    verification: Verification | None = None
    verification_history: list[Verification] = Field(default_factory=list)
    signature: Signature | None = None

    def file(self, kind: str) -> FileEntry | None:
        return next((entry for entry in self.files if entry.kind == kind), None)

    def created(self) -> datetime:
        return datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))

    @property
    def verified(self) -> bool:
        return self.verification is not None and self.verification.status == "passed"

    def record_verification(self, result: Verification) -> None:
        self.verification = result
        self.verification_history = [*self.verification_history, result][-20:]

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def write_manifest(directory: Path, manifest: Manifest) -> None:
    """Write ``directory/manifest.json`` atomically and durably."""
    path = directory / MANIFEST
    tmp = directory / (MANIFEST + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(manifest.to_json(), handle, indent=2, sort_keys=False)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def read_manifest(directory: Path) -> Manifest:
    """The manifest of a backup set; a missing or invalid one is an unverifiable set."""
    path = directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Manifest.model_validate(data)
    except FileNotFoundError as exc:
        raise SchedgenError(
            f"{path} is missing: the backup set is incomplete or not a backup",
            code="backup_unverifiable",
            hint="run `schedgen backup list` to see usable backups",
        ) from exc
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError) as exc:
        raise SchedgenError(
            f"{path} is not a valid manifest: {str(exc).splitlines()[0]}",
            code="backup_unverifiable",
            hint="the set cannot be verified; use another backup",
        ) from exc
