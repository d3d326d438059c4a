"""The processes an operator starts leave their startup objects out of full collections."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.ops.conftest import clean_env

# What each entry point builds before it serves: uvicorn's factory for `docdigest web`,
# and the settings class `arq docdigest.worker.WorkerSettings` reads.
ENTRY_POINTS = {
    "web": "from docdigest.main import app_from_env; app_from_env()",
    "worker": "import docdigest.worker; docdigest.worker.WorkerSettings",
    # The extraction fork server, whose children would otherwise walk its converters.
    "extraction server": "from docdigest.documents.extract import server; server.preload()",
    # What the tests and embedders call: no freezing there.
    "create_app": "from docdigest.main import create_app; create_app()",
}
REPORT = "import gc; print(gc.get_freeze_count(), len(gc.get_objects()))"


def heap_after(entry_point: str, tmp_path: Path) -> tuple[int, int]:
    """(objects frozen, objects a full collection would walk) once `entry_point` ran."""
    env = clean_env(DOCDIGEST_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-c", f"{ENTRY_POINTS[entry_point]}\n{REPORT}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    frozen, tracked = result.stdout.split()[-2:]
    return int(frozen), int(tracked)


@pytest.mark.parametrize("entry_point", ["web", "worker", "extraction server"])
def test_startup_objects_are_frozen(entry_point: str, tmp_path: Path) -> None:
    frozen, tracked = heap_after(entry_point, tmp_path)

    # Tens of thousands of modules, classes, routes and mappers no full pass walks again.
    assert frozen > 50_000
    assert tracked < frozen / 100


def test_an_app_built_in_process_is_left_alone(tmp_path: Path) -> None:
    frozen, tracked = heap_after("create_app", tmp_path)

    assert frozen == 0
    assert tracked > 50_000
