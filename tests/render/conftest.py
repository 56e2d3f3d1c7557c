"""Rendered trees shared by the render tests: one render + validation per (profile, target) per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from renderkit import PROJECT, SECRETS, config_for

from schedgen_ops.render import render_tree, validate_tree
from schedgen_ops.render.problems import Problem


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Path]:
    cache: dict[tuple[str, str], Path] = {}

    def get(profile: str, target: str = "all") -> Path:
        if (profile, target) not in cache:
            out = tmp_path_factory.mktemp(f"{profile}-{target}")
            render_tree(config_for(profile), SECRETS, target, out, project_dir=PROJECT)
            cache[(profile, target)] = out
        return cache[(profile, target)]

    return get


@pytest.fixture(scope="session")
def validated(rendered: Callable[[str, str], Path]) -> Callable[[str, str], list[Problem]]:
    cache: dict[tuple[str, str], list[Problem]] = {}

    def get(profile: str, target: str = "all") -> list[Problem]:
        if (profile, target) not in cache:
            cache[(profile, target)] = validate_tree(rendered(profile, target))
        return cache[(profile, target)]

    return get
