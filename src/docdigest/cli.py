"""The `docdigest` command: run everything, or each part on its own."""

from __future__ import annotations

import importlib
import os
from importlib.util import find_spec
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from docdigest.settings import get_settings


class DomainCommands(TyperGroup):
    """Sub-commands that live with their domains, imported only when used.

    Importing them pulls in the whole application, which `run`, `web`, `worker`
    and `migrate` should not pay for; a domain without one is simply absent.
    """

    domains = {"users": "docdigest.users.cli", "jobs": "docdigest.jobs.cli"}

    def _available(self) -> list[str]:
        return [name for name, module in self.domains.items() if find_spec(module) is not None]

    # `Any`: typer's context and command types moved between releases (click, then its own copy).
    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *self._available()]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in self.domains and cmd_name in self._available():
            group = typer.main.get_group(importlib.import_module(self.domains[cmd_name]).app)
            group.name = cmd_name
            return group
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=DomainCommands,
    name="docdigest",
    help="Upload documents, get their text and a summary by email, and a daily digest.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def run() -> None:
    """Start everything on this machine: database, Redis, mail catcher, web app and a worker."""
    from docdigest.devserver.launcher import Launcher

    raise typer.Exit(Launcher(get_settings()).run())


@app.command()
def web(
    workers: Annotated[int | None, typer.Option(help="uvicorn worker processes")] = None,
    host: Annotated[str | None, typer.Option(help="address to bind [DOCDIGEST_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind [DOCDIGEST_PORT]")] = None,
) -> None:
    """Serve the web app with uvicorn (several processes with --workers)."""
    import uvicorn

    from docdigest.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings)
    processes = workers or settings.web_workers
    if processes > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each process counts its own requests; /metrics sums the files they write here.
        from docdigest.core.metrics import prepare_multiprocess_dir

        prepare_multiprocess_dir(settings.data_dir / "metrics")
    uvicorn.run(
        "docdigest.main:app_from_env",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=processes,
        # Behind a load balancer the client's address (login throttling) and scheme
        # (Secure cookies) come from its X-Forwarded-* headers.
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        log_config=None,
        timeout_graceful_shutdown=30,
        # uvicorn's own 5 s for both is shorter than a loaded or paused machine can stall
        # a process. Past the health check's, the supervisor kills it, with every request
        # in it. Past the keep-alive's, it wakes and closes an idle connection even when
        # the client's next request already waits in it, and the client gets a reset.
        timeout_keep_alive=settings.web_keep_alive_s,
        timeout_worker_healthcheck=settings.web_healthcheck_timeout_s,
    )


@app.command()
def worker(
    burst: Annotated[bool, typer.Option(help="stop once the queue is empty")] = False,
) -> None:
    """Run one Arq worker: the same as `arq docdigest.worker.WorkerSettings`."""
    from docdigest.core.heap import freeze_startup_heap
    from docdigest.core.logging import configure_logging
    from docdigest.worker import create_worker

    # A metrics port of 0 is bound as such: the kernel gives a free port and the
    # worker logs it, so several workers on one machine never collide (a port looked
    # up here and bound later could be taken in between, even by an outgoing
    # connection's own port).
    settings = get_settings()
    configure_logging(settings)
    worker = create_worker(settings, burst=burst)
    freeze_startup_heap()
    worker.run()


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="target revision")] = "head",
) -> None:
    """Bring the database schema up to date; safe when several processes run it at once."""
    from docdigest.core.logging import configure_logging
    from docdigest.migrate import upgrade

    settings = get_settings()
    configure_logging(settings)
    upgrade(settings, revision)
