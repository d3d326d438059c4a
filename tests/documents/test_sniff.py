"""What an uploaded text file is taken for: CSV only when its rows line up; binary is not text."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from docdigest.documents import sniff as sniff_module
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


def test_the_markdown_shortcut_gives_the_regex_s_verdict() -> None:
    """The cheap pre-check may only skip the regex where the regex finds nothing."""
    pieces = [
        "word ", "Prose goes on. ", "\n", "\r\n", "\n\n", "   ", "\t", "\f", "\x0b", "\u2028",
        "# ", "## Title", "```", "- ", "* ", "+ ", "1. ", "٣. ", "> ", ">", "[a](b)", "[x]",
        "](", "**", "**b", "*", "-", "2023", ".", "\u00a0", "\x1c",
    ]  # fmt: skip
    rng = random.Random(20261124)
    samples = ["".join(rng.choices(pieces, k=rng.randint(1, 40))) for _ in range(5000)]
    samples += [PROSE, "\n \n - item\n- two", "\u00a0\u00a0٣. one\n٤. two", "a\r- b\r\n- c"]
    expected = [len(sniff_module._MARKDOWN_SIGNS.findall(s)) >= 2 for s in samples]
    assert [sniff_module._looks_like_markdown(s) for s in samples] == expected
    assert sum(expected) > 500  # the samples do exercise both verdicts
