"""Read a multipart upload from the request stream, enforcing limits while the bytes arrive.

FastAPI's `UploadFile` spools the whole body before the handler runs; this reader instead stops at the
first byte past the size cap (413), rejects a body whose first KiB has no ``%PDF-`` (415) without
reading the rest, and stops reading at the closing boundary (anything a client sends after it is never
read). A body that is not well-formed multipart is a 400 ``invalid_multipart``, never a 5xx: every
piece the client controls (part headers, field values, the number of parts) has a bound.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

MAGIC = b"%PDF-"
MAGIC_WINDOW = 1024  # the PDF spec allows junk before the header within the first KiB
MAX_FIELD_BYTES = 1024
MAX_PARTS = 8
MAX_PART_HEADER_BYTES = 8 * 1024  # all header lines of one part together
MAX_BOUNDARY_BYTES = 200  # RFC 2046 allows 70; some clients use a little more
#: Everything around the file a valid body can hold (every part's headers and fields, boundaries): the
#: whole body may exceed the file cap by this much. Bounds what is read before the first boundary too.
BODY_SLACK = MAX_PARTS * (MAX_PART_HEADER_BYTES + MAX_FIELD_BYTES + 2 * MAX_BOUNDARY_BYTES)


def clean_filename(raw: str) -> str | None:
    """The client's file name as a label only: no directories, no control characters (a NUL byte is
    refused by Postgres text columns), at most 255 characters; None when nothing is left."""
    import unicodedata

    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if not unicodedata.category(ch).startswith("C")).strip()
    return name[:255] or None


class UploadRejected(Exception):
    """The upload breaks a rule; ``code`` is a parser error code or a request error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Upload:
    data: bytearray = field(default_factory=bytearray)
    filename: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    seen_file: bool = False


class _Collector:
    """python-multipart callbacks that fill an `Upload` and raise at the first broken limit."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.upload = Upload()
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._parts = 0
        self._header_bytes = 0
        self.ended = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise UploadRejected(422, "invalid_request", "too many form fields")
        self._headers = {}
        self._header_bytes = 0
        self._name = None
        self._is_file = False
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]
        self._count_header_bytes(end - start)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._count_header_bytes(end - start)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise UploadRejected(
                400, "invalid_multipart", f"a part's headers exceed {MAX_PART_HEADER_BYTES} bytes"
            )

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        self._name = name.decode("utf-8", "replace") if name else None
        self._is_file = self._name == "file"
        if self._is_file:
            if self.upload.seen_file:
                raise UploadRejected(422, "invalid_request", "send exactly one file")
            self.upload.seen_file = True
            filename = options.get(b"filename")
            self.upload.filename = clean_filename(filename.decode("utf-8", "replace")) if filename else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._is_file:
            buffer = self.upload.data
            before = len(buffer)
            buffer += chunk
            if len(buffer) > self.max_bytes:
                raise UploadRejected(
                    413, "file_too_large", f"the file is larger than the {self.max_bytes} byte limit"
                )
            if before < MAGIC_WINDOW <= len(buffer) and MAGIC not in buffer[: MAGIC_WINDOW + len(MAGIC)]:
                raise UploadRejected(415, "not_a_pdf", "the file is not a PDF (no %PDF- header)")
        else:
            self._value += chunk
            if len(self._value) > MAX_FIELD_BYTES:
                raise UploadRejected(422, "invalid_request", f"form field {self._name!r} is too long")

    def on_part_end(self) -> None:
        if not self._is_file and self._name:
            self.upload.fields[self._name] = self._value.decode("utf-8", "replace").strip()

    def on_end(self) -> None:
        self.ended = True


async def read_upload(content_type: str, stream: AsyncIterator[bytes], *, max_bytes: int) -> Upload:
    """Parse ``multipart/form-data`` from ``stream``; the PDF must be in the field named ``file``.

    Reads until the closing boundary or the first broken limit, whichever comes first.
    """
    ctype, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise UploadRejected(
            415, "unsupported_media_type", "send multipart/form-data with the PDF in the field 'file'"
        )
    if len(boundary) > MAX_BOUNDARY_BYTES:
        raise UploadRejected(
            400, "invalid_multipart", f"the multipart boundary is longer than {MAX_BOUNDARY_BYTES} bytes"
        )
    collector = _Collector(max_bytes)
    parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    limit, total = max_bytes + BODY_SLACK, 0
    try:
        async for chunk in stream:
            total += len(chunk)
            if total > limit:  # e.g. an endless preamble, which the parser skips without a bound
                raise UploadRejected(
                    413, "file_too_large", f"the request body is larger than the {max_bytes} byte limit"
                )
            if chunk:
                parser.write(chunk)
            if collector.ended:
                break  # the closing boundary: whatever follows is not read
        parser.finalize()
    except FormParserError:
        # python-multipart's own wording is not ours to promise: clients get one stable message.
        raise UploadRejected(
            400,
            "invalid_multipart",
            "the body is not valid multipart/form-data: check the boundary, the part headers and the CRLFs",
        ) from None
    except ClientDisconnect:
        raise UploadRejected(
            400, "client_disconnected", "the client closed the connection mid-upload"
        ) from None
    if not collector.ended:
        raise UploadRejected(
            400, "invalid_multipart", "the multipart body ends before its closing boundary (--BOUNDARY--)"
        )
    if not collector.upload.seen_file:
        raise UploadRejected(422, "invalid_request", "the multipart field 'file' is missing")
    return collector.upload
