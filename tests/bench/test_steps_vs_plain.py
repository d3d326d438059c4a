"""The pipeline bench's comparison of a round's steps with the same work in a plain loop."""

from __future__ import annotations

from typing import Any

from bench.pipeline import steps_vs_plain


def round_with(**totals_s: float) -> dict[str, Any]:
    """A round's `work_ms` as `read_back` gives it: per step, its total among others."""
    return {
        "work_ms": {
            step: {"steps": 300, "p50": 1.0, "total_s": total} for step, total in totals_s.items()
        }
    }


def test_each_step_is_set_against_the_same_step_of_the_plain_loop() -> None:
    one_worker = round_with(extract=10.5, summarize=3.0, email=1.8)
    loop = {"work_s": {"extract": 10.0, "summarize": 3.2}}

    # The mail has no counterpart in the loop and is left out.
    assert steps_vs_plain(one_worker, loop) == {"extract": 1.05, "summarize": 0.938}


def test_a_step_that_did_not_run_on_either_side_is_left_out() -> None:
    # A corpus whose texts were all empty: no summaries in the round, none in the loop.
    round_ = round_with(extract=4.0)
    loop = {"work_s": {"extract": 5.0, "summarize": 0.0}}

    assert steps_vs_plain(round_, loop) == {"extract": 0.8}


def test_no_comparison_for_a_round_that_did_not_run() -> None:
    # Quick mode runs no two-worker round.
    assert steps_vs_plain(None, {"work_s": {"extract": 1.0, "summarize": 1.0}}) is None
