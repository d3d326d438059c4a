"""What an operator sees: counts, filtered lists that page by keyset, a job's page with
secrets hidden, and the workers with their heartbeats."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from docdigest.core.db import utcnow
from docdigest.core.queue import connect_queue
from docdigest.jobs.dashboard import queries
from docdigest.jobs.dashboard.queries import function_names
from docdigest.jobs.dashboard.workers import health_check_key, register_worker
from docdigest.jobs.models import JobStatus
from docdigest.settings import Settings
from tests.visibility.conftest import People, add_runs, ledger_row


async def test_pages_follow_keyset_order_without_gaps_or_repeats(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], people: People
) -> None:
    now = utcnow()
    runs = [
        ledger_row(f"job-{i}", JobStatus.SUCCEEDED, enqueued_at=now - timedelta(minutes=i))
        for i in range(7)
    ]
    same_time = now - timedelta(minutes=3, seconds=30)
    runs += [ledger_row(f"tie-{c}", JobStatus.QUEUED, enqueued_at=same_time) for c in "abc"]
    await add_runs(db, *runs)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/admin/jobs", params=params, headers=people.admin)).json()
        seen += [job["id"] for job in page["jobs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    newer = ["job-0", "job-1", "job-2", "job-3"]
    assert seen == [*newer, "tie-c", "tie-b", "tie-a", "job-4", "job-5", "job-6"]
    bad = await client.get("/api/admin/jobs", params={"cursor": "nonsense"}, headers=people.admin)
    assert bad.status_code == 422


async def test_filters_narrow_the_list_and_the_counts(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], people: People
) -> None:
    await add_runs(
        db,
        ledger_row("a", JobStatus.FAILED, function="process_document", subject="document:42"),
        ledger_row("b", JobStatus.SUCCEEDED, function="process_document", subject="document:7"),
        ledger_row("c", JobStatus.FAILED, function="send_welcome", request_id="req-1"),
        ledger_row("d", JobStatus.SUCCEEDED, function="send_welcome", minutes_ago=120),
    )

    async def ids(**params: str) -> list[str]:
        response = await client.get("/api/admin/jobs", params=params, headers=people.admin)
        return sorted(job["id"] for job in response.json()["jobs"])

    assert await ids(status="failed") == ["a", "c"]
    assert await ids(function="send_welcome") == ["c", "d"]
    assert await ids(subject="document:42") == ["a"]
    assert await ids(q="req-1") == ["c"]
    assert await ids(q="b") == ["b"]
    since = (utcnow() - timedelta(minutes=60)).isoformat()
    assert await ids(since=since) == ["a", "b", "c"]
    assert await ids(until=since) == ["d"]
    naive_utc = (utcnow() - timedelta(minutes=60)).replace(tzinfo=None).isoformat()
    assert await ids(since=naive_utc) == ["a", "b", "c"]
    assert (await client.get("/api/admin/jobs?since=soon", headers=people.admin)).status_code == 422
    stats = (await client.get("/api/admin/jobs/stats", headers=people.admin)).json()
    assert stats["by_status"]["failed"] == 2 and stats["by_status"]["succeeded"] == 2
    assert stats["by_status"]["running"] == 0
    assert stats["by_function"]["send_welcome"] == {"failed": 1, "succeeded": 1}
    bad = await client.get("/api/admin/jobs", params={"status": "exploded"}, headers=people.admin)
    assert bad.status_code == 422
    async with db() as session:
        assert await function_names(session) == ["process_document", "send_welcome"]


async def test_the_jobs_page_lists_filters_and_refreshes_itself(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], people: People
) -> None:
    await add_runs(
        db,
        ledger_row("job-failed", JobStatus.FAILED, error_message="SMTP said no"),
        ledger_row("job-ok", JobStatus.SUCCEEDED),
    )

    page = await client.get("/admin/jobs?status=failed&function=", headers=people.admin)

    assert page.status_code == 200
    assert 'data-job-id="job-failed"' in page.text and 'data-job-id="job-ok"' not in page.text
    assert "SMTP said no" in page.text
    assert 'hx-trigger="every 5s"' in page.text and 'hx-select="#jobs-live"' in page.text
    assert "No worker is running" in page.text
    assert "Requeue failed jobs" in page.text
    bad = await client.get("/admin/jobs?since=yesterday", headers=people.admin)
    assert bad.status_code == 422


async def test_a_jobs_page_hides_secret_arguments(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], people: People
) -> None:
    args = {"user_id": 3, "password": "hunter2", "options": {"api_key": "sk-live-1"}}
    await add_runs(
        db,
        ledger_row("parent", JobStatus.SUCCEEDED, function="process_document"),
        ledger_row("child", JobStatus.FAILED, args=args, parent_id="parent", request_id="req-9"),
    )

    api = (await client.get("/api/admin/jobs/child", headers=people.admin)).json()
    page = await client.get("/admin/jobs/child", headers=people.admin)
    parent = (await client.get("/api/admin/jobs/parent", headers=people.admin)).json()

    assert api["args"] == {"user_id": 3, "password": "***", "options": {"api_key": "***"}}
    assert "hunter2" not in page.text and "sk-live-1" not in page.text
    assert api["parent"]["id"] == "parent" and api["request_id"] == "req-9"
    assert [c["id"] for c in parent["children"]] == ["child"]
    assert "Requeue" in page.text and "req-9" in page.text
    missing = await client.get("/api/admin/jobs/nope", headers=people.admin)
    assert missing.status_code == 404


async def test_workers_show_as_live_or_stale(
    client: httpx.AsyncClient, settings: Settings, people: People
) -> None:
    queue = await connect_queue(settings)
    await register_worker(queue, settings, metrics_port=None, name="host-1")
    await register_worker(queue, settings, metrics_port=9101, name="host-2")
    info = b"Nov-23 10:00:00 j_complete=12 j_failed=1 j_retried=2 j_ongoing=3 queued=4"
    await queue.psetex(health_check_key(settings, "host-2"), 11_000, info)
    # A worker started with plain Arq settings writes Arq's default key.
    await queue.psetex(f"{settings.queue_name}:health-check", 11_000, info)

    workers = (await client.get("/api/admin/workers", headers=people.admin)).json()
    page = await client.get("/admin/jobs", headers=people.admin)
    ready = (await client.get("/readyz")).json()
    await queue.delete(
        health_check_key(settings, "host-2"),
        f"{settings.queue_name}:health-check",
        f"{settings.queue_name}:workers",
    )
    await queue.aclose()

    unregistered, live, stale = workers
    assert (unregistered["name"], unregistered["alive"]) == ("(unregistered)", True)
    assert (live["name"], live["alive"], live["jobs_complete"], live["jobs_ongoing"]) == (
        "host-2",
        True,
        12,
        3,
    )
    assert live["heartbeat_age_s"] is not None and live["heartbeat_age_s"] <= 11
    assert (stale["name"], stale["stale"]) == ("host-1", True)
    assert 'data-worker="host-2"' in page.text and "stale" in page.text
    assert ready["workers"]["live"] == 2 and ready["workers"]["stale"] == 1


@pytest.mark.parametrize("failed", [0, 2])
async def test_readiness_reports_workers_and_dead_letters_but_needs_neither(
    client: httpx.AsyncClient, db: async_sessionmaker[AsyncSession], failed: int
) -> None:
    await add_runs(db, *(ledger_row(f"dead-{i}", JobStatus.FAILED) for i in range(failed)))

    response = await client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["dead_letters"] == failed
    assert body["workers"]["live"] == 0
    assert body["workers"]["newest_heartbeat_age_s"] is None
    assert "no live worker" in body["workers"]["status"]


async def test_large_counts_stop_at_the_cap_and_say_so(
    client: httpx.AsyncClient,
    db: async_sessionmaker[AsyncSession],
    people: People,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queries, "COUNT_CAP", 3)
    await add_runs(db, *(ledger_row(f"ok-{i}", JobStatus.SUCCEEDED) for i in range(5)))
    await add_runs(db, ledger_row("bad", JobStatus.FAILED))

    stats = (await client.get("/api/admin/jobs/stats", headers=people.admin)).json()
    page = await client.get("/admin/jobs", headers=people.admin)

    assert stats["by_status"]["succeeded"] == 3 and stats["capped"] == ["succeeded"]
    assert stats["by_status"]["failed"] == 1
    assert stats["by_function"] == {"record_number": {"succeeded": 5, "failed": 1}}
    assert '<td data-status="succeeded">3+</td>' in page.text
