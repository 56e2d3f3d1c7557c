"""Hypothesis fuzz of the raw upload body against a real api process: no client input gives a 5xx.

Bodies are built by hand (httpx would percent-encode control bytes in a multipart file name, and a
hostile client does not): near-valid multipart with hostile pieces (random boundaries, header bytes,
file names with control characters, truncation, junk before and after, bodies split at random points
and sent chunked), plus plain random bytes and random Content-Type values.
"""

from __future__ import annotations

import itertools
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stackkit import Stack, service_env

from schedgen_ops.runtime.dataservices import PostgresServer, RedisServer, free_port

MAX_BYTES = 50_000
TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


@pytest.fixture(scope="module")
def fuzz_api(
    postgres_server: PostgresServer, redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    workdir: Path = tmp_path_factory.mktemp("upload-fuzz")
    env = service_env(
        url,
        redis_server.url_for(0),
        workdir,
        SCHEDGEN_UPLOAD_MAX_BYTES=str(MAX_BYTES),
        SCHEDGEN_RATE_UPLOADS="1000000/hour",
    )
    stack = Stack(env, workdir, free_port())
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()
        postgres_server.drop_database(name)
        shutil.rmtree(workdir, ignore_errors=True)


boundaries = st.one_of(
    st.just("b0undary"),
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='";,\\'),
        min_size=1,
        max_size=80,
    ),
)
header_bytes = st.binary(max_size=60) | st.sampled_from(
    [b"Content-Type: application/pdf", b"Content-Type", b": x", b"X:\x00\x01", b"\xff\xfe: \x80"]
)
filenames = st.binary(max_size=40) | st.text(max_size=20).map(str.encode) | st.just(b"a\x00b\x1b[2J\x7f.pdf")
payloads = st.one_of(
    st.just(TINY_PDF), st.binary(max_size=2000), st.just(b"%PDF-1.7\n" + b"0" * (MAX_BYTES + 10))
)


@st.composite
def multipart_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    boundary = draw(boundaries)
    b = boundary.encode()
    parts = []
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from([b"file", b"priority", b"other", b""]))
        disposition = b'Content-Disposition: form-data; name="' + field + b'"'
        if draw(st.booleans()):
            disposition += b'; filename="' + draw(filenames) + b'"'
        headers = [disposition, *draw(st.lists(header_bytes, max_size=2))]
        if draw(st.booleans()):
            headers = draw(st.permutations(headers))
        parts.append(b"--" + b + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + draw(payloads) + b"\r\n")
    junk = st.just(b"") | st.binary(max_size=30)  # mostly none: the parts behind it get exercised too
    body = draw(junk) + b"".join(parts)
    body += draw(st.sampled_from([b"--" + b + b"--\r\n", b"--" + b + b"--", b"--" + b, b""]))
    body += draw(junk)
    if draw(st.integers(0, 3)) == 0:
        body = body[: draw(st.integers(0, len(body)))]
    kind = draw(st.integers(0, 9))  # 7 in 10 carry the body's own boundary (hypothesis favours low draws)
    if kind == 9:
        content_type = draw(
            st.text(
                st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
            )
        )
    elif kind == 8:
        content_type = f"multipart/mixed; boundary={boundary}"
    elif kind == 7:
        content_type = "multipart/form-data"
    else:
        quoted = f'"{boundary}"' if kind % 2 else boundary
        content_type = f"multipart/form-data; boundary={quoted}"
    return content_type, body


@st.composite
def well_formed_bodies(draw: st.DrawFn) -> tuple[str, bytes]:
    """Correct framing around hostile values: the file name and the field bytes reach the ledger."""
    boundary = draw(boundaries)
    b = boundary.encode()
    name = draw(filenames).replace(b"\r", b"").replace(b"\n", b"").replace(b'"', b"")
    priority = draw(st.binary(max_size=1500) | st.sampled_from([b"high", b"low", b"\x00"]))
    body = (
        b"--" + b + b'\r\nContent-Disposition: form-data; name="priority"\r\n\r\n' + priority + b"\r\n"
        b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="' + name + b'"\r\n'
        b"Content-Type: application/pdf\r\n\r\n" + draw(payloads) + b"\r\n--" + b + b"--\r\n"
    )
    return f"multipart/form-data; boundary={boundary}", body


@st.composite
def chunkings(draw: st.DrawFn, body: bytes) -> list[bytes]:
    cuts = sorted(set(draw(st.lists(st.integers(0, len(body)), max_size=4))))
    edges = [0, *cuts, len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges)]


@given(data=st.data(), sample=well_formed_bodies() | multipart_bodies())
@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_upload_body_gives_a_5xx(fuzz_api: Stack, data: st.DataObject, sample: tuple[str, bytes]) -> None:
    content_type, body = sample
    # Latin-1 bytes: what a raw client can put in a header (httpx would refuse non-ASCII str). Leading or
    # trailing blanks are not part of a field value (RFC 9110 5.5: a server strips them), and h11 refuses
    # to send them, so they are stripped here.
    value = content_type.strip(" \t")
    headers = {b"Content-Type": value.encode("latin-1")} if value else {}
    if data.draw(st.booleans(), label="chunked"):
        chunks = data.draw(chunkings(body), label="chunks")
        content: bytes | Iterator[bytes] = iter(chunks)
    else:
        content = body
    try:
        response = fuzz_api.client.post("/api/uploads", content=content, headers=headers)
    except httpx.HTTPError as exc:  # the api may close a connection it refused early; never a 5xx
        pytest.fail(f"no answer: {exc!r}")
    assert response.status_code < 500, (response.status_code, response.text, fuzz_api.logs()[-2000:])
    if response.status_code != 202:
        assert response.headers["content-type"] == "application/json", (response.status_code, response.text)
        error = response.json()["error"]
        assert error["code"] and error["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
