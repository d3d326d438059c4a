"""The job tier's CPU driver (`bench/_jobs.py`) runs end to end, so its figures stay takeable."""

from __future__ import annotations

from bench._jobs import burst


async def test_the_driver_takes_every_document_to_its_mail_and_times_each_job(
    redis_url: str,
) -> None:
    result = await burst("sqlite", 3, 2000, redis_url)

    # burst() itself fails unless every document's mail (and the welcome mail) arrived.
    assert set(result["job_cpu_ms"]) == {"send_welcome_email", "extract_text", "email_user"}
    assert all(ms > 0 for ms in result["job_cpu_ms"].values())
    assert result["main_thread_cpu_ms_per_document"] > result["job_cpu_ms"]["extract_text"]
