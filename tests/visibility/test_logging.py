"""Production writes JSON lines, development readable ones; both carry the request id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from asgi_correlation_id import correlation_id

from docdigest.core.logging import configure_logging
from docdigest.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _log_one_line(capsys: pytest.CaptureFixture[str], settings: Settings) -> str:
    configure_logging(settings)
    token = correlation_id.set("req-77")
    try:
        logging.getLogger("docdigest.jobs").info("job done", extra={"job_id": "j1"})
        logging.getLogger("docdigest.jobs").debug("not at INFO")
    finally:
        correlation_id.reset(token)
    return capsys.readouterr().out


def test_production_logs_json_lines(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    # Only the log settings matter here; the rest of a production setup is checked elsewhere.
    out = _log_one_line(capsys, Settings.model_construct(env="production"))

    line = json.loads(out.strip())
    assert (line["msg"], line["level"], line["request_id"], line["job_id"]) == (
        "job done",
        "info",
        "req-77",
        "j1",
    )


def test_development_logs_readable_lines_at_the_configured_level(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    out = _log_one_line(capsys, Settings(env="development", log_level="DEBUG"))

    first, second = out.strip().splitlines()
    assert "INFO" in first and "job done" in first and "request_id=req-77" in first
    assert "job_id=j1" in first
    assert "not at INFO" in second
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)
