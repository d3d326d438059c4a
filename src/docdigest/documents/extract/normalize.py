"""Make extracted text uniform, whatever the format or the language."""

from __future__ import annotations

import re
import unicodedata

# pdfium marks a hyphen it found at a line end as U+0002; U+00AD is the soft hyphen.
_LINE_END_HYPHEN = re.compile(r"(?<=\w)[-\x02\u00ad][ \t]*\n[ \t]*(\w)")
_INLINE_SOFT_HYPHEN = re.compile("[\u00ad\x02]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\u200b\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACE_CHARS = "[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]"
# Runs of two or more, or one that is not a plain space: single spaces are left alone.
_SPACES = re.compile(f"{_SPACE_CHARS}{{2,}}|[^\\S \\n\\r]")
_BLANK_LINES = re.compile(r"\n{3,}")


def _join_hyphenated(match: re.Match[str]) -> str:
    after = match.group(1)
    # Only a lowercase continuation is a word broken by the layout ("exam-\nple");
    # "Jean-\nPaul" or "2020-\n2021" keep their hyphen.
    return after if after.islower() else f"-{after}"


def normalize_text(text: str) -> str:
    if not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _LINE_END_HYPHEN.sub(_join_hyphenated, text)
    text = _INLINE_SOFT_HYPHEN.sub("", text)
    text = _CONTROL.sub("", text)
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()
