"""The upload's body parser: its quick way through a file's bytes hands every callback
exactly what python-multipart's own parser hands it, however the body is cut."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, cast

import pytest
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser

from docdigest.documents.multipart import MultipartBodyParser

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

BOUNDARY = b"----WebKitFormBoundary7MA4YWxkTrZu0gW"
DELIMITER = b"\r\n--" + BOUNDARY
HEAD = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\n'
PROSE = b"The keepers wrote the weather in the ledger every evening at six o'clock.\n"


class Recorder:
    """The callbacks' calls in order, a part's data joined into one event."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    def callbacks(self) -> dict[str, Any]:
        def data(name: str) -> Any:
            def call(chunk: bytes, start: int, end: int) -> None:
                if self.events and self.events[-1][0] == name:
                    self.events[-1] = (name, self.events[-1][1] + chunk[start:end])
                else:
                    self.events.append((name, chunk[start:end]))

            return call

        def note(name: str) -> Any:
            return lambda: self.events.append((name, b""))

        names = ("part_begin", "header_end", "headers_finished", "part_end", "end")
        return {
            **{f"on_{name}": note(name) for name in names},
            **{f"on_{name}": data(name) for name in ("header_field", "header_value", "part_data")},
        }


def parse(
    parser_class: type[MultipartParser], chunks: list[bytes], max_size: float = float("inf")
) -> tuple[Recorder, str]:
    recorder = Recorder()
    callbacks = cast("MultipartCallbacks", recorder.callbacks())
    parser = parser_class(BOUNDARY, callbacks, max_size=max_size)
    outcome = "complete"
    try:
        for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        outcome = f"error: {exc}"
    return recorder, f"{outcome}, ended in state {parser.state!r}"


def file_bytes(rng: random.Random) -> bytes:
    """Bytes a file may hold, with whatever looks like the start of a delimiter."""
    pieces = []
    for _ in range(rng.randrange(1, 12)):
        kind = rng.choice(["prose", "crlf prose", "binary", "near delimiter", "cr"])
        if kind == "prose":
            pieces.append(PROSE * rng.randrange(1, 3000))
        elif kind == "crlf prose":
            pieces.append(PROSE.replace(b"\n", b"\r\n") * rng.randrange(1, 300))
        elif kind == "binary":
            pieces.append(rng.randbytes(rng.randrange(1, 40_000)))
        elif kind == "near delimiter":
            pieces.append(DELIMITER[: rng.randrange(1, len(DELIMITER))] + b"x")
        else:
            pieces.append(b"\r")
    return b"".join(pieces)


def body(rng: random.Random) -> bytes:
    parts = []
    for number in range(rng.randrange(1, 4)):
        if rng.random() < 0.3:
            disposition = f'form-data; name="note{number}"'
            content = b"hello"
        else:
            disposition = f'form-data; name="file"; filename="f{number}.txt"'
            content = file_bytes(rng)
        head = f"Content-Disposition: {disposition}\r\n\r\n".encode()
        parts.append(b"--" + BOUNDARY + b"\r\n" + head + content + b"\r\n")
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    """The body in chunks of the sizes a server hands on: big ones, and odd small ones."""
    chunks, start = [], 0
    while start < len(data):
        size = rng.choice([1, 2, 7, len(DELIMITER) - 1, 4096, 65_536, 262_144])
        size = rng.randrange(1, size + 1) if rng.random() < 0.5 else size
        chunks.append(data[start : start + size])
        start += size
    return chunks


@pytest.mark.parametrize("seed", range(40))
def test_every_body_gives_the_callbacks_what_the_plain_parser_gives(seed: int) -> None:
    rng = random.Random(seed)
    data = body(rng)
    if seed % 4 == 3:
        data = data[: rng.randrange(len(data))]  # cut off anywhere
    chunks = cut(data, rng)
    plain, plain_outcome = parse(MultipartParser, chunks)
    quick, quick_outcome = parse(MultipartBodyParser, chunks)
    assert quick.events == plain.events
    assert quick_outcome == plain_outcome


def test_a_delimiter_cut_across_chunks_still_ends_the_part() -> None:
    # The second chunk has no carriage return, but the first ended inside a delimiter.
    chunks = [HEAD + PROSE + DELIMITER[:6], DELIMITER[6:] + b"--", b"\r\n"]
    recorder, outcome = parse(MultipartBodyParser, chunks)
    assert ("part_data", PROSE) in recorder.events
    assert recorder.events[-2:] == [("part_end", b""), ("end", b"")]
    assert outcome.startswith("complete")


def test_prose_without_carriage_returns_goes_past_the_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The quick way is taken: only the chunks with a carriage return are parsed."""
    parsed: list[bytes] = []
    internal_write = MultipartParser._internal_write

    def counted(parser: MultipartParser, data: bytes, length: int) -> int:
        parsed.append(data)
        return internal_write(parser, data, length)

    monkeypatch.setattr(MultipartParser, "_internal_write", counted)
    data = PROSE * 20_000
    chunks = [HEAD, *(data[i : i + 65_536] for i in range(0, len(data), 65_536))]
    chunks.append(DELIMITER + b"--\r\n")
    recorder, outcome = parse(MultipartBodyParser, chunks)
    assert ("part_data", data) in recorder.events
    assert outcome.startswith("complete")
    assert parsed == [HEAD, DELIMITER + b"--\r\n"]


def test_a_size_limit_cuts_the_body_where_the_plain_parser_cuts_it() -> None:
    chunks = [HEAD, PROSE * 100, PROSE * 100, DELIMITER + b"--\r\n"]
    limit = len(HEAD) + len(PROSE) * 150
    plain, _ = parse(MultipartParser, chunks, max_size=limit)
    quick, _ = parse(MultipartBodyParser, chunks, max_size=limit)
    assert quick.events == plain.events
    assert ("part_data", PROSE * 150) in quick.events
