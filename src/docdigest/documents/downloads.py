"""File responses for downloads: RFC 6266/5987 names, ETag revalidation and byte ranges."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Callable
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import StreamingResponse

Chunks = Callable[[int, int], AsyncIterator[bytes]]
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_UNSAFE_ASCII = re.compile(r"[^A-Za-z0-9 !#$&+,\-.^_`(){}~\[\]=@]")


def content_disposition(filename: str) -> str:
    """`attachment` with an ASCII fallback name and the exact UTF-8 one (RFC 5987)."""
    fallback = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = _UNSAFE_ASCII.sub("_", fallback).strip() or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _etag_matches(header: str, etag: str) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) of a single satisfiable range; None when the header is unusable.

    Raises ValueError for a syntactically valid but unsatisfiable range.
    """
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: serve the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            raise ValueError
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        raise ValueError
    return start, end


def file_response(
    request: Request,
    *,
    size: int,
    etag: str,
    media_type: str,
    filename: str,
    chunks: Chunks,
) -> Response:
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(filename),
        "X-Content-Type-Options": "nosniff",
        # Even if something renders it, an uploaded page gets no script and no origin.
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, no-cache",
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    if range_header and (if_range is None or if_range.strip() == etag):
        try:
            byte_range = _byte_range(range_header, size)
        except ValueError:
            headers["Content-Range"] = f"bytes */{size}"
            return Response(status_code=416, headers=headers)
        if byte_range is not None:
            first, last = byte_range
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
            headers["Content-Length"] = str(last - first + 1)
            return StreamingResponse(
                chunks(first, last), status_code=206, media_type=media_type, headers=headers
            )
    headers["Content-Length"] = str(size)
    end = max(size - 1, 0)
    body = chunks(0, end) if size else _empty()
    return StreamingResponse(body, media_type=media_type, headers=headers)


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


def bytes_chunks(data: bytes) -> Chunks:
    async def chunks(first: int, last: int) -> AsyncIterator[bytes]:
        yield data[first : last + 1]

    return chunks
