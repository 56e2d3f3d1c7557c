"""The `service` section: ServiceSettings as the configuration validates them, and which are secret."""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from schedgen_ops.config.values import safe_text
from schedgen_ops.service.settings import ServiceSettings

SECRET_SERVICE_FIELDS = frozenset(
    {"database_url", "redis_url", "ops_token", "s3_access_key", "s3_secret_key"}
)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class ServiceValues(ServiceSettings):
    """ServiceSettings validated from the merged configuration only.

    ServiceSettings is a BaseSettings: validating it (even nested) reads SCHEDGEN_* from the process
    environment. The configuration must not: single-level SCHEDGEN_<FIELD> variables belong to the
    running service, and a render must not depend on the shell it runs in.
    """

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: Any,
        init_settings: Any,
        env_settings: Any,
        dotenv_settings: Any,
        file_secret_settings: Any,
    ) -> tuple[Any, ...]:
        return (init_settings,)

    @model_validator(mode="after")
    def _renderable(self) -> ServiceValues:
        """Service settings become env-file lines and supervisord words: one safe line each."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    try:
                        safe_text(item)
                    except ValueError as exc:
                        raise ValueError(f"service.{name}: {exc}") from None
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"service.log_level: {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")
        for name in ("rate_uploads", "rate_status", "rate_requests", "rate_key_failures"):
            rate = getattr(self, name, None)
            if rate is not None:
                _rate(name, rate)
        return self


def _rate(name: str, value: str) -> None:
    """A rate in the limits library's notation ("10/hour", "100 per minute")."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ValueError(f"service.{name}: {value!r} is not a rate like 10/hour or 100/minute") from None
