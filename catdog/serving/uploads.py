"""Reading uploads: bounded in bytes and in time, kept in memory, never on disk.

A body over the limit is refused by its Content-Length before a byte of it is
read, and while streaming when the length is not declared (chunked) or is a
lie. A client that stops sending gets 408 after `read_timeout` seconds without
data, or once the whole body took longer than `body_timeout`. Multipart forms
are parsed from memory with python-multipart's low-level parser (Starlette's
`request.form()` spools files over 1 MB to a temporary file).
"""

import asyncio
import time
from dataclasses import dataclass

#: Content types accepted for a raw image body (besides multipart/form-data).
RAW_TYPES = ("image/", "application/octet-stream")
#: Most files one batch request may carry.
MAX_FILES = 64


class UploadError(Exception):
    """A request that cannot be served; answered as JSON with `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Upload:
    filename: str
    content: bytes


@dataclass
class Limits:
    max_bytes: int = 20_000_000
    read_timeout: float = 10.0
    body_timeout: float = 120.0


async def read_body(request, limits):
    """The whole body as bytes, or UploadError 400/408/413."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise UploadError(400, f"bad Content-Length header: {declared[:40]!r}")
        if int(declared) > limits.max_bytes:
            raise UploadError(413, _too_large(int(declared), limits.max_bytes))
    chunks, size = [], 0
    deadline = time.monotonic() + limits.body_timeout
    while True:
        wait = min(limits.read_timeout, deadline - time.monotonic())
        if wait <= 0:
            raise UploadError(408, f"the upload took longer than {limits.body_timeout:g} s")
        try:
            message = await asyncio.wait_for(request.receive(), wait)
        except asyncio.TimeoutError:
            raise UploadError(408, f"no data from the client for {wait:g} s: upload timed out") from None
        if message["type"] == "http.disconnect":
            raise UploadError(400, "the client disconnected before the upload was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limits.max_bytes:
            raise UploadError(413, _too_large(size, limits.max_bytes, at_least=True))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def read_images(request, limits, many=False):
    """The uploaded images: a raw image body, or the files of a multipart form."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        boundary = _boundary(request.headers["content-type"])
        uploads = parse_multipart(await read_body(request, limits), boundary)
    elif kind.startswith(RAW_TYPES[0]) or kind == RAW_TYPES[1]:
        uploads = [Upload("", await read_body(request, limits))]
    else:
        shown = kind or "none"
        raise UploadError(
            415,
            f"unsupported content type {shown[:60]!r}: send the image's bytes as image/* or "
            "application/octet-stream, or files as multipart/form-data",
        )
    if not uploads:
        raise UploadError(400, "the form holds no file: send the image as a file field")
    if len(uploads) > MAX_FILES:
        raise UploadError(413, f"{len(uploads)} files in one request; at most {MAX_FILES}")
    if len(uploads) > 1 and not many:
        raise UploadError(400, f"{len(uploads)} files sent to /predict, which takes one: use /predict/batch")
    return uploads


def parse_multipart(body, boundary):
    """The file parts of a multipart/form-data body, in order (UploadError 400 if malformed)."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    parts, state = [], {}

    def on_part_begin():
        state.update(headers={}, data=[], field=b"", value=b"")

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_part_data(data, start, end):
        state["data"].append(bytes(data[start:end]))

    def on_part_end():
        _, options = parse_options_header(state["headers"].get(b"content-disposition", b""))
        if b"filename" in options:  # a file field; plain text fields are ignored
            name = options[b"filename"].decode("utf-8", "replace")[:200]
            parts.append(Upload(name, b"".join(state["data"])))

    callbacks = {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_part_data": on_part_data, "on_part_end": on_part_end,
    }
    parser = MultipartParser(boundary, callbacks)
    try:
        parser.write(body)
        parser.finalize()
    except Exception as error:  # python-multipart raises its own errors for bad forms
        raise UploadError(400, f"malformed multipart form: {str(error)[:120]}") from None
    return parts


def _boundary(content_type):
    from python_multipart.multipart import parse_options_header

    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise UploadError(400, "multipart/form-data without a boundary")
    return boundary


def _too_large(size, limit, at_least=False):
    more = "more than " if at_least else ""
    return f"upload of {more}{size / 1e6:.1f} MB is over the limit of {limit / 1e6:.1f} MB (--max-upload-mb)"
