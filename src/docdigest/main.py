"""The web app: create_app() wires the parts together; routes live in their domains."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from docdigest.core.blanks import BlankFiles
from docdigest.core.checkpoints import WalCheckpoints
from docdigest.core.db import create_engine, create_sessionmaker
from docdigest.core.errors import AppError
from docdigest.core.health import router as health_router
from docdigest.core.heap import freeze_startup_heap
from docdigest.core.ids import new_id
from docdigest.core.logging import configure_logging, is_valid_request_id
from docdigest.core.metrics import instrument
from docdigest.core.queue import connect_queue
from docdigest.documents.intake import Intake
from docdigest.documents.routes import router as documents_router
from docdigest.documents.storage import Storage
from docdigest.documents.upload import max_body_bytes
from docdigest.jobs.dashboard.api import router as jobs_admin_api
from docdigest.jobs.dashboard.pages import router as jobs_admin_pages
from docdigest.mail.routes import router as dev_mail_router
from docdigest.settings import Settings, get_settings
from docdigest.users.csrf import CsrfCookieMiddleware
from docdigest.users.routes import router as users_router
from docdigest.users.sessions import TokenCheck
from docdigest.web.errors import error_page, install_error_pages, wants_html
from docdigest.web.pages import router as pages_router

STATIC_DIR = Path(__file__).parent / "web" / "static"
#: The largest body of any request but an upload: the forms and JSON bodies are small,
#: and the framework buffers them whole, so an unbounded one could fill the memory.
MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings.database_url)
        queue = await connect_queue(settings)
        app.state.engine = engine
        app.state.arq = queue
        app.state.sessionmaker = create_sessionmaker(engine, queue=queue, settings=settings)
        app.state.intake = Intake(engine, queue, Storage.from_settings(settings), settings)
        app.state.token_check = TokenCheck(engine)
        app.state.blank_files = BlankFiles(settings.upload_tmp_dir)
        await app.state.blank_files.fill()
        # Before the engine's first connection, which it tells not to checkpoint.
        checkpoints = WalCheckpoints.start_for(engine)
        try:
            yield
        finally:
            await app.state.intake.wait_idle()
            await app.state.token_check.wait_idle()
            app.state.blank_files.close()
            await queue.aclose()
            await engine.dispose()
            if checkpoints is not None:
                await checkpoints.stop()

    app = FastAPI(title="docdigest", lifespan=lifespan, max_body_size=MAX_BODY_BYTES)
    app.state.settings = settings
    app.add_middleware(CsrfCookieMiddleware)
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name="X-Request-ID",
        generator=new_id,
        validator=is_valid_request_id,
    )

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        if wants_html(request):
            return await error_page(request, exc.status_code, exc.message)
        retry_after = exc.detail.get("retry_after_s")
        return JSONResponse(
            {"detail": exc.message, "code": exc.code, **exc.detail},
            status_code=exc.status_code,
            headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
        )

    install_error_pages(app)

    instrument(app)
    # Routes are tried in order, a few microseconds each, so the routers go by how
    # often they are asked: the two health probes, the documents' (uploads and the
    # polls for their state), the accounts', and the operators' last (routing an
    # upload past the 25 routes once before it cost 40 us of its ~1.2 ms).
    app.include_router(health_router)
    # Uploads stream to disk with their own cap (documents/upload.py).
    app.include_router(documents_router, max_body_size=max_body_bytes(settings.max_upload_bytes))
    app.include_router(users_router)
    app.include_router(jobs_admin_api)
    app.include_router(jobs_admin_pages)
    if settings.dev_mail_enabled:
        app.include_router(dev_mail_router)
    app.include_router(pages_router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory docdigest.main:app_from_env`."""
    settings = get_settings()
    configure_logging(settings)
    app = create_app(settings)
    freeze_startup_heap()
    return app
