"""Each answered request is counted, sized and timed under its route template."""

from __future__ import annotations

import json
import uuid

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _all_requests() -> float:
    return sum(
        sample.value
        for family in REGISTRY.collect()
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    )


async def test_a_request_is_counted_under_its_route_template(client: httpx.AsyncClient) -> None:
    handler = "/api/documents/{document_id}"
    counted = _value("http_requests_total", method="GET", status="401", handler=handler)
    timed = _value("http_request_duration_seconds_count", method="GET", handler=handler)
    all_timed = _value("http_request_duration_highr_seconds_count")

    answer = await client.get("/api/documents/12345")

    assert answer.status_code == 401
    assert _value("http_requests_total", method="GET", status="401", handler=handler) == counted + 1
    assert _value("http_request_duration_seconds_count", method="GET", handler=handler) == timed + 1
    assert _value("http_request_duration_highr_seconds_count") == all_timed + 1


async def test_a_method_the_route_refuses_is_counted_under_the_route(
    client: httpx.AsyncClient,
) -> None:
    counted = _value("http_requests_total", method="DELETE", status="405", handler="/healthz")

    answer = await client.delete("/healthz")

    assert answer.status_code == 405
    assert (
        _value("http_requests_total", method="DELETE", status="405", handler="/healthz")
        == counted + 1
    )


async def test_paths_no_route_matches_and_the_scrape_itself_are_not_counted(
    client: httpx.AsyncClient,
) -> None:
    before = _all_requests()

    missing = await client.get(f"/no/such/page/{uuid.uuid4().hex}")
    static = await client.get("/static/no-such-file.css")
    scrape = await client.get("/metrics")

    assert (missing.status_code, static.status_code, scrape.status_code) == (404, 404, 200)
    assert _all_requests() == before
    assert "/no/such/page" not in scrape.text


async def test_request_and_response_sizes_are_those_their_headers_give(
    client: httpx.AsyncClient,
) -> None:
    handler = "/api/signup"
    request_sum = _value("http_request_size_bytes_sum", handler=handler)
    response_sum = _value("http_response_size_bytes_sum", handler=handler)
    body = json.dumps({"email": "not an address", "password": "x" * 20}).encode()

    answer = await client.post(handler, content=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 422
    assert _value("http_request_size_bytes_sum", handler=handler) == request_sum + len(body)
    assert _value("http_response_size_bytes_sum", handler=handler) == response_sum + len(
        answer.content
    )


async def test_a_request_that_fails_is_counted_as_a_500_under_its_route(app: FastAPI) -> None:
    async def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/broken/{part}", broken)
    handler = "/api/broken/{part}"
    counted = _value("http_requests_total", method="GET", status="500", handler=handler)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        answer = await client.get("/api/broken/7")

    assert answer.status_code == 500
    assert _value("http_requests_total", method="GET", status="500", handler=handler) == counted + 1
