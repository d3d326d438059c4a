"""The processes an operator starts leave their startup objects out of full collections."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops.conftest import ENTRY_POINTS, run_python

REPORT = "import gc; print(gc.get_freeze_count(), len(gc.get_objects()))"


def heap_after(entry_point: str, tmp_path: Path) -> tuple[int, int]:
    """(objects frozen, objects a full collection would walk) once `entry_point` ran."""
    printed = run_python(f"{ENTRY_POINTS[entry_point]}\n{REPORT}", tmp_path)
    frozen, tracked = printed.split()[-2:]
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
