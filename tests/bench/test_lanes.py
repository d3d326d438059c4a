"""The pipeline bench's reading of a round's lanes from its jobs' runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bench._readback import lanes

START = datetime(2026, 1, 1, tzinfo=UTC)


def at(ms: float) -> datetime:
    return START + timedelta(milliseconds=ms)


def runs(*spans: tuple[float, float]) -> list[tuple[datetime, datetime]]:
    return [(at(begin), at(end)) for begin, end in spans]


def test_one_lane_splits_its_idle_time_before_between_and_after_its_jobs() -> None:
    # The first job starts 20 ms in; gaps of 1 ms and 3 ms; the round ends 5 ms after
    # the last job, whose mail (a job started after the end) does not count.
    one = runs((20, 100), (101, 200), (203, 300), (310, 320))

    assert lanes(one, 1, START, at(305)) == {
        "before_first_job_s": 0.02,
        "between_jobs_s": 0.004,
        "between_jobs_p50_ms": 2.0,
        "after_last_job_s": 0.005,
    }


def test_two_lanes_take_the_runs_in_turn_and_a_run_past_the_end_leaves_no_idle_time() -> None:
    # Lane one: 10-100, 102-250. Lane two: 15-120, 121-400, running past the end at 300.
    two = runs((10, 100), (15, 120), (102, 250), (121, 400))

    assert lanes(two, 2, START, at(300)) == {
        "before_first_job_s": 0.025,
        "between_jobs_s": 0.003,
        "between_jobs_p50_ms": 1.5,
        "after_last_job_s": 0.05,
    }


def test_a_lane_that_never_ran_a_job_was_idle_the_whole_round() -> None:
    assert lanes(runs((0, 50)), 2, START, at(50)) == {
        "before_first_job_s": 0.05,
        "between_jobs_s": 0.0,
        "between_jobs_p50_ms": None,
        "after_last_job_s": 0.0,
    }
