"""Rendering from untrusted values: every string setting is refused clearly or lands verbatim.

Settings come from schedgen.yaml, SCHEDGEN_* and --set, and end up in YAML, shell, SQL, env files and
Traefik rules. For each string setting, odd values (quotes, backticks, '$', newlines, '{{', YAML
indicators, non-ASCII) must either be refused with an error naming the key, or render a tree in which
every YAML file still parses, no file gains or loses a line, and the value appears exactly as given.
"""

from __future__ import annotations

import re
import types
import typing
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from renderkit import PROJECT, SECRETS

from schedgen_ops.config.loader import merged_layers
from schedgen_ops.config.model import SECRET_SERVICE_FIELDS, Config
from schedgen_ops.render.engine import render_files

#: Strings whose value is fixed by the loader (profile) or that are not rendered text.
NOT_FREE = {"profile"}


def _is_str(annotation: Any) -> bool:
    if annotation is str:
        return True
    if typing.get_origin(annotation) is typing.Annotated:
        return _is_str(typing.get_args(annotation)[0])
    return False


def _string_settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    found: list[str] = []
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _string_settings(annotation, f"{path}.")
        elif _is_str(annotation):
            found.append(path)
        elif typing.get_origin(annotation) is list and _is_str(typing.get_args(annotation)[0]):
            found.append(f"{path}[]")
        elif isinstance(annotation, types.UnionType) and any(_is_str(a) for a in typing.get_args(annotation)):
            found.append(path)
    return found


SETTINGS = sorted(
    p
    for p in _string_settings(Config)
    if p not in NOT_FREE and p.removeprefix("service.") not in SECRET_SERVICE_FIELDS
)

# The profile that renders each setting: MinIO, Sentinel and the operators live in large.
PROFILE = "large"
TARGET = "all"

#: The classic ways out of a YAML scalar, a shell word, a Traefik rule or a template.
PAYLOADS = [
    "example.org`) || PathPrefix(`/",
    "example.org\nevil: true",
    'a" onerror="x',
    "$(touch /tmp/pwned)",
    "{{ secrets }}",
    "x: y",
    "#comment",
    "a\\b",
    "caf\u00e9",
    "a\x00b",
    "../../etc",
]
ODD_TEXT = st.text(
    alphabet=st.sampled_from(list("abz09-._/:@ '\"`${}#\n\\;|&()[],*!%\u00e9\t")), min_size=0, max_size=24
)


HASH_RE = re.compile(r"\b[0-9a-f]{16}\b")

#: Valid stand-ins for settings that are empty by default (a template may add lines when they are set).
SAMPLES = {
    "kubernetes.storage_class": "fast-ssd",
    "service.storage_url": "s3://uploads/prefix",
    "service.s3_endpoint_url": "http://minio:9000",
}


@cache
def _merged() -> dict[str, Any]:
    return merged_layers(PROJECT / "nonexistent", profile=PROFILE, environ={})


@cache
def _baseline(setting: str) -> tuple[str, dict[str, str]]:
    """The value the comparison starts from, and the tree it renders."""
    merged = _merged()
    value = SAMPLES.get(setting) or _original(merged, setting)
    files, _ = render_files(Config.model_validate(_with(merged, setting, value)), SECRETS, TARGET, PROJECT)
    return value, files


def _with(merged: dict[str, Any], setting: str, value: str) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(merged))  # deep copy of plain data
    *parents, leaf = setting.removesuffix("[]").split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = [value] if setting.endswith("[]") else value
    return data


def _original(merged: dict[str, Any], setting: str) -> Any:
    """The value the loader ends up with: the merged layers, else the model's default."""
    node: Any = merged
    model: Any = Config
    for part in setting.removesuffix("[]").split("."):
        field = model.model_fields[part] if model else None
        model = field.annotation if field and isinstance(field.annotation, type) else None
        node = node.get(part) if isinstance(node, dict) else None
        if node is None and field is not None:
            node = field.get_default(call_default_factory=True)
    if setting.endswith("[]"):
        return node[0] if node else None
    return node


def _unhashed(files: dict[str, str]) -> dict[str, str]:
    """The tree without its config hashes (every setting changes those)."""
    return {rel: HASH_RE.sub("#", text) for rel, text in files.items()}


def _check(setting: str, value: str) -> None:
    start, baseline = _baseline(setting)
    try:
        config = Config.model_validate(_with(_merged(), setting, value))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        key = setting.removesuffix("[]")
        assert where.startswith(key) or key in error["msg"], f"the error does not name {key}: {error}"
        return
    files, _ = render_files(config, SECRETS, TARGET, PROJECT)
    assert files.keys() == baseline.keys(), setting
    if not value:  # empty may legitimately drop an optional block
        return
    for rel, text in files.items():
        assert text.count("\n") == baseline[rel].count("\n"), f"{setting}={value!r} changed lines of {rel}"
        if rel.endswith((".yml", ".yaml")):
            list(yaml.safe_load_all(text))  # still parses
    if value != start and _unhashed(files) != _unhashed(baseline):  # rendered: it must appear as given
        assert any(value in text for text in files.values()), f"{setting}={value!r} is nowhere in the tree"


def test_every_string_setting_is_covered() -> None:
    """The list is derived from the model, so a new string setting is fuzzed without anyone adding it."""
    assert {"domain", "traefik.acme_email", "minio.bucket", "kubernetes.storage_class"} <= set(SETTINGS)
    assert len(SETTINGS) >= 25


@pytest.mark.parametrize("setting", SETTINGS)
def test_escape_payloads_are_refused_or_render_verbatim(setting: str) -> None:
    for value in PAYLOADS:
        _check(setting, value)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(setting=st.sampled_from(SETTINGS), value=ODD_TEXT)
def test_odd_values_are_refused_or_render_verbatim(setting: str, value: str) -> None:
    _check(setting, value)


@pytest.mark.parametrize(
    ("setting", "value", "says"),
    [
        ("domain", "example.org`) || PathPrefix(`/", "is not a DNS name"),
        ("domain", "Example.ORG", "is not a DNS name"),
        ("traefik.acme_email", "ops@example.org\nx", "is not an e-mail address"),
        ("minio.bucket", "../uploads", "is not an S3 bucket name"),
        ("postgres.user", "schedgen; DROP ROLE x", "lowercase letters, digits and '_'"),
        ("backup.dir", "../../etc", "relative path inside the project"),
        ("images.service", "evil image", "is not an image reference"),
        ("traefik.content_security_policy", "default-src 'self'\"; x", "contains '\"'"),
        ("edge.api_bind", "0.0.0.0 #:8000", "is not a DNS name"),
    ],
)
def test_injection_attempts_are_refused_with_a_message_that_says_what_is_allowed(
    tmp_path: Path, setting: str, value: str, says: str
) -> None:
    merged = _merged()
    with pytest.raises(ValidationError) as info:
        Config.model_validate(_with(merged, setting, value))
    assert says in str(info.value)


def test_valid_values_still_load() -> None:
    merged = _merged()
    for setting, value in [
        ("domain", "timetable.up.ac.za"),
        ("edge.api_bind", "[::1]:8000"),
        ("images.postgres_exporter", "registry.local:5000/mirror/postgres-exporter:v0.15.0"),
        ("kubernetes.storage_class", ""),
        ("backup.dir", "var/backups"),
    ]:
        Config.model_validate(_with(merged, setting, value))
