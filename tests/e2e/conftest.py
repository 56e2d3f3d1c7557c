"""Fixtures shared by the e2e modules: one compose stack per session (its image build is the slow part)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.composekit import ComposeStack, compose_stack


@pytest.fixture(scope="session")
def shared_compose_stack() -> Iterator[ComposeStack]:
    yield from compose_stack()
