"""Authenticated manifests: HMAC-SHA256 with the project's secret BACKUP_HMAC_KEY.

Whoever can write to the backup directory or the off-site bucket controls manifest.json, and the
checksums in it protect the files only while the manifest itself is authentic. Every manifest schedgen
writes carries ``signature``: an HMAC over its canonical JSON (the model's JSON without ``signature``,
keys sorted, no whitespace) and ``key_id`` (a hash of the key, so a refusal can say whose key it was).
pull, verify, restore and push check it before they act on anything else the manifest says.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from schedgen_ops.errors import SchedgenError
from schedgen_ops.ops.backup.manifest import Manifest, Signature

KEY_NAME = "BACKUP_HMAC_KEY"
KEY_ENV = "SCHEDGEN_BACKUP_HMAC_KEY"
#: A shorter key is refused: the generated one is 43 characters (32 random bytes, URL-safe base64).
MIN_KEY_CHARS = 32
ALLOW_FLAG = "--allow-unsigned"

SignatureState = Literal["valid", "unsigned", "foreign", "tampered"]


@dataclass(frozen=True)
class SigningKey:
    """The project's manifest key and where it came from (never printed)."""

    secret: bytes = field(repr=False)
    source: str

    @classmethod
    def from_text(cls, text: str, source: str) -> SigningKey:
        if len(text) < MIN_KEY_CHARS:
            raise SchedgenError(
                f"the backup signing key from {source} has {len(text)} characters; at least "
                f"{MIN_KEY_CHARS} are required",
                code="backup_key_invalid",
                hint=f"use the generated {KEY_NAME} (`schedgen secrets rotate {KEY_NAME}` makes a new one, "
                "which makes existing sets foreign)",
            )
        return cls(text.encode("utf-8"), source)

    @property
    def key_id(self) -> str:
        """A public name for the key: 16 hex digits of a hash of it."""
        return hashlib.sha256(b"schedgen-backup-key-id\x00" + self.secret).hexdigest()[:16]


def canonical(manifest: Manifest) -> bytes:
    """The bytes the signature covers: everything in the manifest except the signature."""
    document = manifest.model_dump(mode="json", exclude={"signature"})
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _mac(manifest: Manifest, key: SigningKey) -> str:
    return hmac.new(key.secret, canonical(manifest), hashlib.sha256).hexdigest()


def sign(manifest: Manifest, key: SigningKey) -> None:
    """Sign ``manifest`` in place (call after the last change, before writing it)."""
    manifest.signature = Signature(key_id=key.key_id, value=_mac(manifest, key))


def state_of(manifest: Manifest, key: SigningKey) -> SignatureState:
    signature = manifest.signature
    if signature is None:
        return "unsigned"
    if not hmac.compare_digest(signature.key_id, key.key_id):
        return "foreign"
    return "valid" if hmac.compare_digest(signature.value, _mac(manifest, key)) else "tampered"


def refusal(manifest: Manifest, key: SigningKey, state: SignatureState, where: str) -> SchedgenError:
    """Why a manifest is not trusted, and how to proceed when the set is legitimate."""
    if state == "unsigned":
        return SchedgenError(
            f"{where}: the manifest is not signed, so nothing proves this project wrote it (a set made "
            "before schedgen signed manifests, or one whose signature was removed)",
            code="backup_unsigned",
            hint=f"if you know where the set comes from, accept it once with {ALLOW_FLAG}: its files are "
            "still checked and it is then signed with this project's key",
        )
    if state == "foreign":
        theirs = manifest.signature.key_id if manifest.signature else "?"
        return SchedgenError(
            f"{where}: the manifest is signed with another key (key id {theirs}; this project's {KEY_NAME} "
            f"from {key.source} has key id {key.key_id}): it comes from another project, or the key was "
            "rotated since",
            code="backup_foreign_key",
            hint=f"if the set is yours, use the key it was made with: set {KEY_ENV} to that project's "
            f"{KEY_NAME} for this command; or accept it with {ALLOW_FLAG}",
        )
    return SchedgenError(
        f"{where}: the manifest does not match its signature: it was changed after schedgen wrote it",
        code="backup_tampered",
        hint=f"use another copy of the set (pull it again, or an older backup); {ALLOW_FLAG} accepts "
        "it anyway if you changed it yourself",
    )


def authenticate(
    manifest: Manifest, key: SigningKey, *, where: str, allow_unsigned: bool = False
) -> SignatureState:
    """The manifest's signature state; raise unless it is valid or ``allow_unsigned`` accepts it."""
    state = state_of(manifest, key)
    if state != "valid" and not allow_unsigned:
        raise refusal(manifest, key, state, where)
    return state


def describe(state: SignatureState, key: SigningKey) -> str:
    if state == "valid":
        return f"signed with this project's key (key id {key.key_id})"
    return f"{state}, accepted with {ALLOW_FLAG}"


# ---------------------------------------------------------------------------------------------- the key


def load_key(project: Path, environ: Mapping[str, str] | None = None) -> tuple[SigningKey, str | None]:
    """The project's signing key, and a note when it had to be generated.

    ``SCHEDGEN_BACKUP_HMAC_KEY`` wins (a scheduler without the project directory); else
    BACKUP_HMAC_KEY from .schedgen/secrets.env, added to the file when it lacks one (projects made
    before the key existed) and the whole file created when there is none (as `schedgen init` would).
    """
    from schedgen_ops.config.secrets import (
        SECRET_GENERATORS,
        ensure_secrets,
        parse_env_file,
        require_private,
        secrets_path,
        write_env_file,
    )

    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return SigningKey.from_text(env[KEY_ENV], f"${KEY_ENV}"), None
    path = secrets_path(project)
    try:
        if not path.is_file():
            values, _ = ensure_secrets(project)
        else:
            require_private(path, "the backup signing key")
            values = parse_env_file(path.read_text(encoding="utf-8"))
            if values.get(KEY_NAME):
                return SigningKey.from_text(values[KEY_NAME], str(path)), None
            values[KEY_NAME] = SECRET_GENERATORS[KEY_NAME]()
            write_env_file(path, values)
    except OSError as exc:
        raise SchedgenError(
            f"cannot read or add {KEY_NAME} in {path}: {exc}",
            code="backup_key_missing",
            hint=f"set {KEY_ENV} to the project's {KEY_NAME}, or run from the project directory",
        ) from exc
    note = (
        f"generated the backup signing key {KEY_NAME} in {path}: every backup set is signed with it; keep a "
        "copy with your off-site secrets (pulling or restoring sets elsewhere needs it)"
    )
    return SigningKey.from_text(values[KEY_NAME], str(path)), note
