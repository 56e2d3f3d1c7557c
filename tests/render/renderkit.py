"""Shared constants and helpers for the render tests (imported by conftest and the test modules)."""

from __future__ import annotations

from pathlib import Path

from schedgen_ops.config import SECRET_NAMES, load_config
from schedgen_ops.config.model import Config

PROFILES = ("small", "medium", "large")
TARGETS = ("compose", "kubernetes", "local", "all")
PROJECT = Path("/srv/schedgen")  # fixed so trees are byte-comparable (nothing is written there)
# Fixed, recognisable test secrets (>= 12 chars so the literal-secret scan looks for them).
SECRETS = {name: f"test-{name.lower().replace('_', '-')}-0123456789" for name in SECRET_NAMES}


def config_for(profile: str, *overrides: str) -> Config:
    return load_config(PROJECT / "nonexistent", profile=profile, overrides=list(overrides), environ={})
