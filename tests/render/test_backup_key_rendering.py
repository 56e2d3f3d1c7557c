"""The backup signing key: in the in-cluster backup's secrets, and outside the pods' config hash."""

from __future__ import annotations

from renderkit import PROJECT, SECRETS, config_for

from schedgen_ops.render.context import build_context
from schedgen_ops.render.engine import render_files


def test_the_backup_cronjob_gets_the_signing_key() -> None:
    _, secret_files = render_files(config_for("large"), SECRETS, "kubernetes", PROJECT)
    backup = secret_files["kubernetes/secrets/backup.env"]
    assert f"SCHEDGEN_BACKUP_HMAC_KEY={SECRETS['BACKUP_HMAC_KEY']}\n" in backup
    app = secret_files["kubernetes/secrets/app.env"]
    assert "HMAC" not in app, "the service never needs the backup signing key"


def test_adding_the_signing_key_does_not_roll_the_pods() -> None:
    config = config_for("medium")
    without = {k: v for k, v in SECRETS.items() if k != "BACKUP_HMAC_KEY"}
    hashes = {
        build_context(config, secrets, "compose", PROJECT)["config_hash"]
        for secrets in (SECRETS, without, {**SECRETS, "BACKUP_HMAC_KEY": "another-key-0123456789abcdef0123"})
    }
    assert len(hashes) == 1
    rotated = {**SECRETS, "OPS_TOKEN": "another-token-0123456789"}
    assert build_context(config, rotated, "compose", PROJECT)["config_hash"] not in hashes
