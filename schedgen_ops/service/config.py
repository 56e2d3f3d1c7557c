"""Load and check the service settings once at start-up: a bad setting is one line, not a traceback."""

from __future__ import annotations

from pydantic import ValidationError
from pydantic_settings.exceptions import SettingsError

from schedgen_ops.errors import SchedgenError
from schedgen_ops.service.settings import ENV_PREFIX, ServiceSettings


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def load_settings(*, need: tuple[str, ...] = ("database_url", "redis_url", "storage_url")) -> ServiceSettings:
    """Read ``SCHEDGEN_*`` settings; raise `SchedgenError` naming the first missing or invalid one.

    ``need`` lists the connection settings the calling process cannot start without.
    """
    try:
        settings = ServiceSettings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise SchedgenError(
            f"invalid setting {_env_name(field)}: {first['msg']}",
            code="invalid_setting",
            hint="fix the environment variable (see docs/API.md, Settings)",
        ) from exc
    except SettingsError as exc:
        raise SchedgenError(
            f"invalid setting: {exc}", code="invalid_setting", hint="see docs/API.md, Settings"
        ) from exc
    check_settings(settings, need=need)
    return settings


def check_settings(settings: ServiceSettings, *, need: tuple[str, ...]) -> None:
    """Check that required URLs are present and use a supported scheme."""
    schemes = {
        "database_url": ("postgresql://", "postgres://"),
        "redis_url": ("redis://", "rediss://", "unix://"),
        "storage_url": ("file://", "s3://"),
    }
    for field in need:
        raw = getattr(settings, field)
        value = raw.get_secret_value() if hasattr(raw, "get_secret_value") else str(raw)
        if not value:
            raise SchedgenError(
                f"{_env_name(field)} is not set",
                code="missing_setting",
                hint=f"export {_env_name(field)}=" + schemes[field][0] + "...",
            )
        if not value.startswith(schemes[field]):
            raise SchedgenError(
                f"{_env_name(field)} must start with {' or '.join(schemes[field])}",
                code="invalid_setting",
                hint="see docs/API.md, Settings",
            )
