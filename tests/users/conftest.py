from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from docdigest.settings import Settings


@pytest.fixture
async def other_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser on the same app (its own cookie jar)."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A small per-address login limit, so the test reaches it quickly."""
    return settings.model_copy(update={"login_max_failures_per_ip": 8})
