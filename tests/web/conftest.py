"""Fixtures for the student page: one real api + worker per test module (stackkit), and Chromium.

The browser is Debian's chromium driven by Debian's chromedriver through Selenium, both given by path so
Selenium Manager never runs (it would try to download a browser). Absent: the browser tests skip with
the reason, or fail when SCHEDGEN_REQUIRE_SHARED=1 (CI installs both via scripts/bootstrap.sh).
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "service"))
from stackkit import Stack, service_env
from webkit import ensure_worker

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WEB_REDIS_DB = 0  # tests/conftest.py rotates 1..15 per test and leaves 0 for ad-hoc use


@pytest.fixture(scope="module")
def web_stack(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A real api (1 process) on a fresh database, for the whole module; tests that need jobs parsed
    ask for `worker` (the queue test starts it itself, after watching uploads wait)."""
    from tests.conftest import PG_TEMPLATE_DB

    workdir = tmp_path_factory.mktemp("web-stack")
    name = f"w_{uuid.uuid4().hex[:16]}"
    database_url = postgres_server.create_database(name, template=PG_TEMPLATE_DB)
    redis_url = redis_server.url_for(WEB_REDIS_DB)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    stack = Stack(
        service_env(database_url, redis_url, workdir, SCHEDGEN_UPLOAD_MAX_BYTES="200000"),
        workdir,
        free_port(),
    )
    try:
        stack.start_api(1)
        yield stack
    finally:
        stack.stop()
        postgres_server.drop_database(name)
        shutil.rmtree(workdir / "uploads", ignore_errors=True)


@pytest.fixture
def worker(web_stack: Stack) -> Stack:
    """The module's stack with a worker running."""
    ensure_worker(web_stack)
    return web_stack


def _missing_browser() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            return (
                f"{path} is absent (apt-get install -y chromium chromium-driver; scripts/bootstrap.sh does)"
            )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots and downloads go (SCHEDGEN_TEST_ARTEFACTS, else pytest's temporary dir)."""
    base = os.environ.get("SCHEDGEN_TEST_ARTEFACTS")
    path = Path(base) / "web" if base else tmp_path_factory.mktemp("artefacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(artefacts: Path) -> Iterator[Any]:
    """Headless Chromium (one per module), downloads into ``artefacts/downloads``."""
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("SCHEDGEN_REQUIRE_SHARED") == "1":
            pytest.fail(reason + "; SCHEDGEN_REQUIRE_SHARED=1 requires the browser")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    downloads = artefacts / "downloads"
    downloads.mkdir(exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,900", "--no-first-run", "--disable-extensions"):  # fmt: skip
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
