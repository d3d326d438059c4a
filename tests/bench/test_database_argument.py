"""The helpers that take `--database` refuse PostgreSQL at once when no URL names one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

NO_URL = {
    key: value
    for key, value in os.environ.items()
    if key not in ("DOCDIGEST_BENCH_POSTGRES_URL", "DOCDIGEST_TEST_POSTGRES_URL")
}


@pytest.mark.parametrize(
    "helper",
    [["bench._jobs", "--count", "1"], ["bench._drive", "upload", "--count", "1"]],
)
def test_postgres_without_a_url_is_refused_with_the_variables_named(helper: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *helper, "--database", "postgres"],
        capture_output=True,
        text=True,
        env=NO_URL,
        timeout=60,
    )

    assert result.returncode == 2
    assert "DOCDIGEST_BENCH_POSTGRES_URL or DOCDIGEST_TEST_POSTGRES_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
