"""The request id of an HTTP request follows the work it caused: onto the job it enqueued,
into that job's log lines, and into the lines of the job that job enqueued."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from docdigest.core.db import SessionDep
from docdigest.core.logging import JsonFormatter, RequestIdFilter
from docdigest.jobs import enqueue
from docdigest.settings import Settings
from tests.conftest import RunWorker
from tests.visibility import jobs


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The worker's log as production writes it: JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("docdigest")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(level)


async def test_request_id_reaches_the_log_lines_of_the_job_and_of_the_next_job(
    app: FastAPI,
    client: httpx.AsyncClient,
    settings: Settings,
    run_worker: RunWorker,
    json_log: io.StringIO,
) -> None:
    async def start_chain(session: SessionDep) -> dict[str, str]:
        run = await enqueue(session, jobs.chain_job, n=1)
        return {"job_id": run.id}

    app.add_api_route("/test/start-chain", start_chain, methods=["POST"])

    response = await client.post("/test/start-chain", headers={"X-Request-ID": "req-4242"})
    await run_worker(functions=jobs.functions(settings), cron_jobs=[])

    assert response.headers["X-Request-ID"] == "req-4242"
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    starts = [line for line in lines if line["msg"] == "job start"]
    dones = [line for line in lines if line["msg"] == "job done"]
    assert [(line["job"], line["request_id"]) for line in starts] == [
        ("chain_job", "req-4242"),
        ("number_job", "req-4242"),
    ]
    assert {line["job"] for line in dones if line.get("request_id") == "req-4242"} == {
        "chain_job",
        "number_job",
    }


async def test_a_request_without_an_id_gets_a_fresh_one(client: httpx.AsyncClient) -> None:
    ids = [(await client.get("/healthz")).headers["X-Request-ID"] for _ in range(2)]

    assert all(re.fullmatch("[0-9a-f]{32}", given) for given in ids)
    assert ids[0] != ids[1]


@pytest.mark.parametrize("sent", ["x" * 65, "two words", "<script>"])
async def test_an_unusable_request_id_is_replaced(client: httpx.AsyncClient, sent: str) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": sent})

    returned = response.headers["X-Request-ID"]
    assert returned != sent and len(returned) >= 32
