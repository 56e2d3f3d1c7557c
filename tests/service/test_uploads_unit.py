"""The upload reader on its own: every byte it reads is bounded, whatever the stream holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from schedgen_ops.service.uploads import BODY_SLACK, UploadRejected, read_upload

CT = "multipart/form-data; boundary=b0undary"


class Counted:
    """A request body far larger than any cap (20 MB, so a missing cap fails instead of hanging);
    counts what the reader pulled from it."""

    def __init__(self, first: bytes, chunk: bytes) -> None:
        self.first, self.chunk, self.read = first, chunk, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read += len(self.first)
        yield self.first
        while self.read < 20_000_000:
            self.read += len(self.chunk)
            yield self.chunk


def _read(stream: Counted, max_bytes: int = 100_000) -> UploadRejected:
    with pytest.raises(UploadRejected) as caught:
        asyncio.run(read_upload(CT, stream.__aiter__(), max_bytes=max_bytes))
    return caught.value


def test_an_endless_preamble_is_cut_off_at_the_body_cap() -> None:
    # The parser skips everything after a leading CR/LF up to the next "-", so a preamble of chunks that
    # each start with CR LF would be skipped for ever: the reader's own cap ends it.
    stream = Counted(b"\r\n", b"\r\n" + b"x" * 65534)
    error = _read(stream)
    assert (error.status, error.code) == (413, "file_too_large")
    assert stream.read <= 100_000 + BODY_SLACK + 65536


def test_an_endless_file_is_cut_off_at_the_file_cap() -> None:
    head = b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n\r\n%PDF-1.4\n'
    stream = Counted(head, b"0" * 65536)
    error = _read(stream)
    assert (error.status, error.code) == (413, "file_too_large")
    assert stream.read <= 100_000 + len(head) + 65536


def test_endless_field_values_and_headers_are_refused_early() -> None:
    field = Counted(b'--b0undary\r\nContent-Disposition: form-data; name="priority"\r\n\r\n', b"h" * 4096)
    error = _read(field)
    assert (error.status, error.code) == (422, "invalid_request") and field.read < 16 * 1024
    headers = Counted(b"--b0undary\r\nX-Pad: ", b"a" * 4096)
    error = _read(headers)
    assert (error.status, error.code) == (400, "invalid_multipart") and headers.read < 16 * 1024
