"""`python -m docdigest` is the `docdigest` command (the launcher starts its children so)."""

from docdigest.cli import app

app(prog_name="docdigest")
