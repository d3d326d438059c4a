"""Sentence splitting that survives abbreviations ("Dr.", "e.g.", "U.S.") and initials."""

from __future__ import annotations

import re

# Lowercased, without the final period. Titles and Latin abbreviations that are
# almost never the end of a sentence.
_ABBREVIATION_LIST = """
    mr mrs ms dr prof sr jr st mt rev capt lt sgt gov pres sen e.g eg i.e ie cf vs etc
    al approx ca fig figs vol vols pp inc ltd co corp dept univ jan feb mar apr jun jul
    aug sep sept oct nov dec a.m p.m u.s u.k u.n e.u ph.d b.sc m.sc
"""
ABBREVIATIONS = frozenset(_ABBREVIATION_LIST.split())
# A candidate end: terminal punctuation, optional closing quotes/brackets, then space.
_CLOSERS = "\"')\\]\u201d\u2019\u300d\u300f"
_BOUNDARY = re.compile(
    f"(?:([.!?\u2026]+)[{_CLOSERS}]*\\s+|([\u3002\uff01\uff1f]+)[{_CLOSERS}]*\\s*)"
)
_HEADING = re.compile(r"#{1,6}\s")
_LIST_ITEM = re.compile(r"(?:[-*+•]|\d+[.)])\s")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text` in order; paragraphs, headings and list items always split."""
    sentences: list[str] = []
    for block in _blocks(text):
        sentences.extend(_split_block(block))
    return sentences


def _blocks(text: str) -> list[str]:
    """Paragraphs, with each heading and each list item a block of its own."""
    blocks: list[str] = []
    current: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or _HEADING.match(line) or _LIST_ITEM.match(line):
            if current:
                blocks.append(" ".join(current))
            current = []
            if line and _HEADING.match(line):
                blocks.append(line)
                continue
        if line:
            current.append(line)
    if current:
        blocks.append(" ".join(current))
    return blocks


def _split_block(block: str) -> list[str]:
    block = " ".join(block.split())
    if not block:
        return []
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(block):
        if match.group(2) or _is_sentence_end(block, start, match):
            sentence = block[start : match.end()].strip()
            if sentence:
                sentences.append(sentence)
            start = match.end()
    tail = block[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def _is_sentence_end(block: str, start: int, match: re.Match[str]) -> bool:
    if match.group(1) != ".":
        return True  # "!", "?", "...", CJK full stops
    following = block[match.end() : match.end() + 1]
    if following and following.islower():
        return False  # "e.g. the", "approx. ten"
    end = match.start(1)
    word = block[max(start, block.rfind(" ", start, end) + 1) : end]
    word = word.lower().lstrip("\"'([\u201c\u2018")
    if word in ABBREVIATIONS:
        return False
    if len(word) == 1 and word.isalpha():
        return False  # an initial: "J. Smith"
    # Dotted letters ("U.S.", "D.C.") stay joined to what follows: a rare merged
    # sentence reads better in a summary than a sentence cut in two.
    return not re.fullmatch(r"(?:\w\.)+\w", word)
