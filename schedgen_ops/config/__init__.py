"""Configuration: scale profiles + project overrides + secrets -> one validated `Config`."""

from schedgen_ops.config.loader import available_profiles, load_config, profile_layer
from schedgen_ops.config.model import Config
from schedgen_ops.config.secrets import SECRET_NAMES, load_secrets

__all__ = ["SECRET_NAMES", "Config", "available_profiles", "load_config", "load_secrets", "profile_layer"]
