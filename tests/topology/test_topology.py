"""The compose topology without containers: 2 uvicorn workers, 3 Arq workers, PostgreSQL, Redis.

500 documents from several users go through the API; each is processed once,
each "ready" mail is sent once, the digest reaches each user once, and the
metrics of all processes add up to what the ledger says.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import create_async_engine

from docdigest.core.db import commit, create_engine, create_sessionmaker, utcnow
from docdigest.core.queue import connect_queue
from docdigest.devserver.redis import free_ports, start_redis
from docdigest.digest import service as digest_service
from docdigest.digest.jobs import send_digest
from docdigest.documents.models import Document
from docdigest.jobs import enqueue
from docdigest.jobs.models import FINISHED_STATUSES, JobRun, JobStatus
from docdigest.mail.outbox import message_id_for
from docdigest.settings import Settings
from tests.conftest import _asyncpg_url
from tests.topology.stack import (
    DOCDIGEST,
    Processes,
    base_env,
    mail_sink,
    metric,
    scrape,
    wait_for,
)

pytestmark = [
    pytest.mark.topology,
    pytest.mark.skipif(
        not os.environ.get("DOCDIGEST_TEST_TOPOLOGY"),
        reason="the topology test runs with make test-topology",
    ),
    pytest.mark.skipif(
        not os.environ.get("DOCDIGEST_TEST_POSTGRES_URL"),
        reason="the topology test needs PostgreSQL: set DOCDIGEST_TEST_POSTGRES_URL",
    ),
]

USERS = 5
DOCUMENTS_PER_USER = 100
DOCUMENTS = USERS * DOCUMENTS_PER_USER
# The jobs of a document with the extractive summarizer, which summarizes in extract_text.
PIPELINE = ("extract_text", "email_user")


def document_text(user: int, n: int) -> bytes:
    return (
        f"Quarterly report {n} from team {user}. Revenue grew in region {n % 7} this quarter. "
        f"The team shipped {n % 5 + 1} releases and closed {n * 3} tickets. "
        "Costs stayed flat while hiring slowed. The outlook for next quarter is steady. "
        f"Reference number {uuid.uuid4().hex}."
    ).encode()


async def admin(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(statement))
    await engine.dispose()


@pytest.fixture
def database_url() -> Any:
    admin_url = _asyncpg_url(os.environ["DOCDIGEST_TEST_POSTGRES_URL"])
    name = f"docdigest_topology_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin(admin_url, f'CREATE DATABASE "{name}"'))
    yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def upload_everything(base_url: str) -> tuple[list[int], list[int]]:
    limit = asyncio.Semaphore(16)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:

        async def user_session(user: int) -> tuple[int, dict[str, str]]:
            email, password = f"user{user}@example.com", "a long passphrase 42"
            account = {"email": email, "name": f"User {user}", "password": password}
            signup = await client.post("/api/signup", json=account)
            assert signup.status_code == 201, signup.text
            login = await client.post("/api/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            # An API client: bearer tokens, no cookie (a login closes the session a cookie names).
            client.cookies.clear()
            return signup.json()["id"], {"Authorization": f"Bearer {login.json()['access_token']}"}

        accounts = [await user_session(user) for user in range(USERS)]
        headers = [h for _, h in accounts]

        async def upload(user: int, n: int) -> int:
            async with limit:
                response = await client.post(
                    "/api/documents",
                    headers=headers[user],
                    files={
                        "file": (f"report-{user}-{n}.txt", document_text(user, n), "text/plain")
                    },
                )
            assert response.status_code == 202, response.text
            return int(response.json()["id"])

        uploads = [upload(u, n) for u in range(USERS) for n in range(DOCUMENTS_PER_USER)]
        return list(await asyncio.gather(*uploads)), [user_id for user_id, _ in accounts]


async def ledger(url: str) -> dict[str, Any]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        runs = (await conn.execute(select(JobRun.function, JobRun.status, JobRun.subject))).all()
        documents = (
            await conn.execute(select(Document.status, func.count()).group_by(Document.status))
        ).all()
    await engine.dispose()
    return {"runs": runs, "documents": dict(documents)}


async def unfinished(url: str, functions: tuple[str, ...]) -> int:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        count = await conn.scalar(
            select(func.count())
            .select_from(JobRun)
            .where(JobRun.function.in_(functions), JobRun.status.not_in(FINISHED_STATUSES))
        )
    await engine.dispose()
    return int(count or 0)


async def run_the_digest_twice(settings: Settings) -> Any:
    """The cron job as a lagging scheduler might fire it: twice for the same period."""
    period = digest_service.latest_period(settings, utcnow())
    engine = create_engine(settings.database_url)
    queue = await connect_queue(settings)
    sessions = create_sessionmaker(engine, queue=queue, settings=settings)
    async with sessions() as session:
        # The documents became ready just now; place them inside the period being sent.
        await session.execute(
            update(Document).values(ready_at=period.end - (period.end - period.start) / 2)
        )
        await commit(session)
    for _ in range(2):
        async with sessions() as session:
            await enqueue(session, send_digest)
            await commit(session)
    await queue.aclose()
    await engine.dispose()
    return period


async def costs(url: str, redis_port: int) -> dict[str, float]:
    """Counters for the capacity model: Redis commands, database commits and row writes."""
    redis = Redis(port=redis_port)
    commands = (await redis.info("stats"))["total_commands_processed"]
    await redis.aclose()
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        await conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        row = (
            await conn.execute(
                text(
                    "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted"
                    " FROM pg_stat_database WHERE datname = current_database()"
                )
            )
        ).one()
    await engine.dispose()
    return {"redis_commands": commands, "db_commits": row[0], "db_row_writes": row[1]}


def record_costs(before: dict[str, float], after: dict[str, float]) -> None:
    """Per document, over the whole pipeline and its mails (idle polling included)."""
    per_document = {k: round((after[k] - before[k]) / DOCUMENTS, 1) for k in before}
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "topology-costs.json").write_text(json.dumps(per_document) + "\n")
    print("per document:", json.dumps(per_document))


def test_500_documents_through_two_web_processes_and_three_workers(
    tmp_path: Path, database_url: str
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    processes = Processes(logs)
    redis_port, smtp_port, web_port, *worker_ports = free_ports(6)
    redis = start_redis(redis_port, tmp_path / "redis", appendonly=True)
    env = base_env(
        DOCDIGEST_ENV="production",
        DOCDIGEST_SECRET_KEY="topology-test-" + uuid.uuid4().hex * 2,
        DOCDIGEST_DATABASE_URL=database_url,
        DOCDIGEST_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        DOCDIGEST_SMTP_HOST="127.0.0.1",
        DOCDIGEST_SMTP_PORT=str(smtp_port),
        DOCDIGEST_DATA_DIR=str(tmp_path / "shared"),
        DOCDIGEST_PORT=str(web_port),
    )
    fields: dict[str, Any] = {
        k[len("DOCDIGEST_") :].lower(): v for k, v in env.items() if k.startswith("DOCDIGEST_")
    }
    settings = Settings(**fields)
    base_url = f"http://127.0.0.1:{web_port}"
    try:
        with mail_sink(smtp_port) as sink:
            # Two deploy hooks racing to migrate: the lock lets one work and the other wait.
            migrations = [
                processes.start(f"migrate-{n}", [*DOCDIGEST, "migrate"], env, serves=False)
                for n in range(2)
            ]
            assert [m.wait(300) for m in migrations] == [0, 0]

            processes.start("web", [*DOCDIGEST, "web", "--workers", "2"], env)
            for n, port in enumerate(worker_ports):
                worker_env = env | {"DOCDIGEST_WORKER_METRICS_PORT": str(port)}
                processes.start(f"worker-{n}", [*DOCDIGEST, "worker"], worker_env)
            wait_for(lambda: httpx.get(f"{base_url}/readyz").status_code == 200, "web", processes)
            for port in worker_ports:
                wait_for(
                    lambda p=port: scrape(f"http://127.0.0.1:{p}/metrics"), "worker", processes
                )

            before = asyncio.run(costs(database_url, redis_port))
            document_ids, user_ids = asyncio.run(upload_everything(base_url))
            assert len(set(document_ids)) == DOCUMENTS

            def ready_mails() -> list[str]:
                return [str(m["Message-ID"]) for m in sink.messages]

            wait_for(lambda: len(ready_mails()) >= DOCUMENTS + USERS, "the ready mails", processes)
            wait_for(
                lambda: asyncio.run(unfinished(database_url, PIPELINE)) == 0,
                "the pipeline",
                processes,
            )

            period = asyncio.run(run_the_digest_twice(settings))
            digest_functions = ("send_digest", "send_user_digest")
            wait_for(
                lambda: asyncio.run(unfinished(database_url, digest_functions)) == 0,
                "digest",
                processes,
            )

            wait_for(
                lambda: asyncio.run(unfinished(database_url, PIPELINE)) == 0, "idle", processes
            )
            time.sleep(2)  # PostgreSQL publishes its counters about once a second
            after = asyncio.run(costs(database_url, redis_port))
            record_costs(before, after)
            state = asyncio.run(ledger(database_url))
            mail_ids = Counter(ready_mails())
            worker_samples = [scrape(f"http://127.0.0.1:{p}/metrics") for p in worker_ports]
            web_samples = scrape(f"{base_url}/metrics")
    except BaseException:
        processes.print_tails()
        raise
    finally:
        processes.stop()
        redis.terminate()
        redis.wait(30)

    # Every document processed, once: one run of each pipeline step per document.
    assert state["documents"] == {"ready": DOCUMENTS}
    runs = state["runs"]
    for function in PIPELINE:
        subjects = Counter(s for f, _, s in runs if f == function)
        assert len(subjects) == DOCUMENTS and set(subjects.values()) == {1}, function
        assert {st for f, st, _ in runs if f == function} == {JobStatus.SUCCEEDED}

    # Every mail once: one per document, one welcome per user, one digest per user.
    for document_id in document_ids:
        assert mail_ids[message_id_for(f"doc-ready:{document_id}")] == 1
    digests = [message_id_for(digest_service.digest_key(u, period.date)) for u in user_ids]
    assert [mail_ids[d] for d in digests] == [1] * USERS
    assert sum(mail_ids.values()) == DOCUMENTS + 2 * USERS
    assert set(mail_ids.values()) == {1}

    # The metrics of all processes add up to the ledger.
    for function in PIPELINE:
        per_worker = [
            metric(s, "docdigest_jobs_total", function=function, outcome="succeeded")
            for s in worker_samples
        ]
        assert sum(per_worker) == DOCUMENTS, (function, per_worker)
    processed = [
        metric(s, "docdigest_jobs_total", function="extract_text", outcome="succeeded")
        for s in worker_samples
    ]
    assert all(count > 0 for count in processed), f"a worker sat idle: {processed}"
    uploads = metric(web_samples, "http_requests_total", handler="/api/documents", method="POST")
    assert uploads == DOCUMENTS
