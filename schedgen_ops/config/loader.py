"""Merge profile < schedgen.yaml < SCHEDGEN_* env < --set into one validated `Config`.

Misspelt keys are reported with the nearest valid key, so a typo in an override can never be
silently ignored (the previous setup's failure mode).
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from schedgen_ops.config.model import Config
from schedgen_ops.errors import SchedgenError
from schedgen_ops.resources import data_dir
from schedgen_ops.service.settings import ServiceSettings

PROJECT_FILE = "schedgen.yaml"
BASE_PROFILE = "base"
DEFAULT_PROFILE = "small"
ENV_PREFIX = "SCHEDGEN_"
# Project-level keys of schedgen.yaml besides Config's own fields.
_FREE_MAPPINGS = {("checklist", "ignore"), ("semesters",)}


def profiles_dir() -> Path:
    return data_dir("profiles")


def available_profiles() -> list[str]:
    """Names of the built-in scale profiles (base.yaml is their shared part, not a profile)."""
    return sorted(p.stem for p in profiles_dir().glob("*.yaml") if p.stem != BASE_PROFILE)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SchedgenError(f"{path}: invalid YAML: {exc}", code="config_invalid") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SchedgenError(f"{path}: expected a mapping at the top level", code="config_invalid")
    return data


def profile_layer(name: str) -> dict[str, Any]:
    """The built-in profile ``name`` merged over base.yaml (the lowest precedence layer)."""
    names = available_profiles()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=1)
        hint = f"did you mean {near[0]!r}?" if near else f"choose one of {', '.join(names)}"
        raise SchedgenError(f"unknown profile {name!r}", code="unknown_profile", hint=hint)
    merged = deep_merge(
        _read_yaml(profiles_dir() / f"{BASE_PROFILE}.yaml"), _read_yaml(profiles_dir() / f"{name}.yaml")
    )
    merged["profile"] = name
    return merged


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge: mappings merge key by key, anything else is replaced."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_project(project_dir: Path) -> dict[str, Any]:
    """schedgen.yaml of the project ({} when the project has none)."""
    path = project_dir / PROJECT_FILE
    return _read_yaml(path) if path.is_file() else {}


def parse_value(text: str) -> Any:
    """A --set/env value as YAML (numbers, booleans, lists like [a, b]); plain text otherwise."""
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in nested mappings, checking every key against the model first."""
    parts = check_key(dotted)
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def parse_assignments(items: list[str], *, source: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` strings as a nested override layer."""
    layer: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise SchedgenError(
                f"{source} {item!r}: expected KEY=VALUE",
                code="config_invalid",
                hint="e.g. --set api.replicas=3",
                exit_code=2,
            )
        set_path(layer, key.strip(), parse_value(value))
    return layer


def env_layer(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Overrides from ``SCHEDGEN_<SECTION>__<KEY>`` (and SCHEDGEN_PROFILE / SCHEDGEN_DOMAIN).

    Single-level ``SCHEDGEN_<FIELD>`` variables belong to the service processes themselves
    (ServiceSettings) and are not config overrides, so they are ignored here.
    """
    environ = os.environ if environ is None else environ
    layer: dict[str, Any] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX) :]
        if "__" in rest:
            dotted = ".".join(part.lower() for part in rest.split("__"))
        elif rest in ("PROFILE", "DOMAIN"):
            dotted = rest.lower()
        else:
            continue
        try:
            set_path(layer, dotted, parse_value(environ[name]))
        except SchedgenError as exc:
            raise SchedgenError(
                f"environment variable {name}: {exc.message}", code=exc.code, hint=exc.hint
            ) from exc
    return layer


def _model_keys(model: type[BaseModel]) -> dict[str, Any]:
    return dict(model.model_fields)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    candidates = [annotation, *getattr(annotation, "__args__", ())]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def check_key(dotted: str) -> list[str]:
    """Split a dotted key and verify every part names a field; suggest the nearest on a typo."""
    parts = [p for p in dotted.split(".")]
    if not all(parts):
        raise SchedgenError(f"invalid key {dotted!r}", code="unknown_key")
    if parts[0] == "checklist" and len(parts) > 1:
        if parts[1] != "ignore":
            raise SchedgenError(
                f"unknown key {dotted!r}", code="unknown_key", hint="did you mean 'checklist.ignore'?"
            )
        return parts
    model: type[BaseModel] | None = Config
    for index, part in enumerate(parts):
        prefix = tuple(parts[:index])
        if prefix and any(prefix[: len(free)] == free for free in _FREE_MAPPINGS):
            return parts
        if model is None:
            raise SchedgenError(
                f"unknown key {dotted!r}: {'.'.join(parts[:index])} has no sub-keys", code="unknown_key"
            )
        fields = _model_keys(model)
        if part not in fields:
            where = ".".join(parts[:index])
            near = difflib.get_close_matches(part, list(fields), n=1, cutoff=0.5)
            hint = (
                f"did you mean {'.'.join([*parts[:index], near[0]])!r}?"
                if near
                else (f"valid keys{' under ' + where if where else ''}: {', '.join(sorted(fields))}")
            )
            raise SchedgenError(f"unknown key {dotted!r}", code="unknown_key", hint=hint)
        if part == "service":
            model = ServiceSettings
        elif model is ServiceSettings:
            model = None
        else:
            model = _submodel(fields[part].annotation)
    return parts


def _check_tree(data: Mapping[str, Any], prefix: str = "") -> None:
    """Check every key of an override layer (so schedgen.yaml typos are caught with a suggestion)."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        parts = check_key(dotted)
        if isinstance(value, Mapping) and value and not _is_leaf_mapping(parts):
            _check_tree(value, dotted + ".")


def _is_leaf_mapping(parts: list[str]) -> bool:
    return (
        tuple(parts) in _FREE_MAPPINGS
        or tuple(parts) in {("checklist",)}
        or (len(parts) >= 1 and parts[0] == "semesters")
    )


def validation_error(exc: ValidationError, source: str) -> SchedgenError:
    """The first pydantic error as one line naming the key."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    msg = err["msg"].removeprefix("Value error, ")
    extra = (
        f" (got {err['input']!r})"
        if err["type"] not in ("value_error", "missing") and not isinstance(err.get("input"), dict)
        else ""
    )
    more = f"; {len(exc.errors()) - 1} more" if len(exc.errors()) > 1 else ""
    return SchedgenError(
        f"invalid configuration at {loc or '(top level)'}: {msg}{extra}{more}",
        code="config_invalid",
        hint=f"check {source}",
    )


def merged_layers(
    project_dir: Path,
    *,
    profile: str | None = None,
    overrides: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The raw merged mapping (before model validation), for `config show` and tests."""
    project = read_project(project_dir)
    _check_tree(project)
    env = env_layer(environ)
    cli = parse_assignments(list(overrides or []))
    name = profile or cli.get("profile") or env.get("profile") or project.get("profile") or DEFAULT_PROFILE
    merged = profile_layer(str(name))
    for layer in (project, env, cli):
        merged = deep_merge(merged, layer)
    merged["profile"] = str(name)
    return merged


def load_config(
    project_dir: Path,
    *,
    profile: str | None = None,
    overrides: list[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Load the validated configuration of the project in ``project_dir``.

    Precedence: built-in profile < schedgen.yaml < SCHEDGEN_* environment < ``overrides`` (--set).
    An explicit ``profile`` argument picks the base profile regardless of the layers.
    """
    merged = merged_layers(project_dir, profile=profile, overrides=overrides, environ=environ)
    try:
        return Config.model_validate(merged)
    except ValidationError as exc:
        raise validation_error(exc, f"{project_dir / PROJECT_FILE}, SCHEDGEN_* env and --set") from exc
