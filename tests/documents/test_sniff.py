"""What an uploaded text file is taken for: CSV only when its rows line up; binary is not text."""

from __future__ import annotations

from pathlib import Path

import pytest

from docdigest.documents.sniff import CSV, TEXT, UNKNOWN, sniff


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('name,city\n"Lovelace, Ada",London\n"Hopper, Grace",New York\n', CSV),
        ("year;keeper;lamp\n1890;Ann;oil\n1921;Ben;electric\n", CSV),
        ("year\tkeeper\n1890\tAnn\n1921\tBen\n", CSV),
        ("year|keeper\n1890|Ann\n1921|Ben\n", CSV),
        (
            "The keeper, who lived alone, lit the lamp.\n"
            "Ships passed in the night.\n"
            "In winter, storms came, and went, often.\n",
            TEXT,
        ),
        ("a,b,c\n1,2\n3,4,5\n", TEXT),  # ragged rows
        ("a,b,c\n", TEXT),  # one row is not a table
    ],
    ids=["quoted-commas", "semicolons", "tabs", "pipes", "prose", "ragged", "one-row"],
)
def test_text_is_csv_only_when_every_row_has_the_same_columns(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "upload"
    path.write_text(content)
    assert sniff(path) == expected


def test_a_long_table_is_judged_on_its_first_rows(tmp_path: Path) -> None:
    path = tmp_path / "upload"
    rows = "".join(f"{n},keeper {n},{n * 3}\n" for n in range(50_000))
    path.write_text("id,name,hours\n" + rows)
    assert sniff(path) == CSV


PROSE = "The keeper lit the lamp at dusk and logged the ships that passed. " * 30


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "utf-16"])
@pytest.mark.parametrize(
    ("controls", "expected"),
    # One control character in a hundred is still text (a stray form of data in a
    # log, say); more than that is binary. Tabs, newlines, form feeds and ESC are
    # ordinary text and never count.
    [(0, TEXT), (2, TEXT), (60, UNKNOWN)],
    ids=["none", "a-few", "many"],
)
def test_text_with_control_characters_is_binary_past_one_in_a_hundred(
    tmp_path: Path, encoding: str, controls: int, expected: str
) -> None:
    body = (
        "\x1b[1mLog\x1b[0m\n\tindented\f\n"
        + PROSE
        + "\x01\x02\x1c\x1f\x0e" * (controls // 5)
        + "\x01" * (controls % 5)
    )
    path = tmp_path / "upload"
    path.write_bytes(
        body.encode(encoding) + ("é".encode(encoding) if encoding == "cp1252" else b"")
    )
    assert sniff(path) == expected
