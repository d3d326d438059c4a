"""The README, an operator's first page: the two commands first, then every setting."""

from __future__ import annotations

from pathlib import Path

from docdigest.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_begins_with_the_two_commands() -> None:
    commands = README.split("```")[1].strip().splitlines()
    assert [line.split("#")[0].strip() for line in commands] == ["make run", "make test"]


def test_readme_names_every_setting() -> None:
    missing = [
        f"DOCDIGEST_{name.upper()}"
        for name in Settings.model_fields
        if f"`DOCDIGEST_{name.upper()}`" not in README
    ]
    assert missing == [], "add these settings to the README's Settings section"
