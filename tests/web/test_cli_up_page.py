"""`schedgen up` names the student page: / of the local stack's api."""

from __future__ import annotations

from schedgen_ops.cli.up import page_url


def test_the_page_url_is_the_root_of_the_api() -> None:
    assert page_url({"api": "http://127.0.0.1:8000"}) == "http://127.0.0.1:8000/"
    assert page_url({"api": "http://127.0.0.1:8000/"}) == "http://127.0.0.1:8000/"
    assert page_url({"front": "http://127.0.0.1:9000"}) == "http://127.0.0.1:9000/"
    assert page_url({}) is None
