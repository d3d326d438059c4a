"""`docdigest jobs …`: the dashboard's views and actions for a terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import commit, create_engine, create_sessionmaker, utcnow
from docdigest.core.errors import AppError
from docdigest.core.queue import connect_queue
from docdigest.jobs import control
from docdigest.jobs.dashboard.queries import JobFilter, job_detail, job_stats, list_jobs
from docdigest.jobs.dashboard.workers import WorkerInfo, list_workers
from docdigest.jobs.models import JobRun, JobStatus
from docdigest.settings import get_settings

app = typer.Typer(help="See into the job queue; requeue or cancel jobs.", no_args_is_help=True)
console = Console()
T = TypeVar("T")
Action = Callable[[AsyncSession], Awaitable[T]]


def _run(action: Action[T]) -> T:
    """Run `action` in one session with the queue attached; commit if it succeeds."""

    async def main() -> T:
        settings = get_settings()
        engine = create_engine(settings.database_url)
        queue = await connect_queue(settings)
        try:
            async with create_sessionmaker(engine, queue=queue, settings=settings)() as session:
                result = await action(session)
                await commit(session)
                return result
        finally:
            await queue.aclose()
            await engine.dispose()

    try:
        return asyncio.run(main())
    except AppError as exc:
        console.print(f"[red]{exc.message}[/red]")
        raise typer.Exit(1) from exc


def _since(value: str | None) -> datetime | None:
    """`--since 2h`, `30m`, `7d`, or an ISO date and time (UTC unless it says otherwise)."""
    if not value:
        return None
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if value[-1] in units and value[:-1].isdigit():
        return utcnow() - timedelta(**{units[value[-1]]: int(value[:-1])})
    try:
        at = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("use e.g. 30m, 2h, 7d or 2026-01-31T08:00") from exc
    return at if at.tzinfo else at.replace(tzinfo=utcnow().tzinfo)


def _time(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _jobs_table(runs: list[JobRun], title: str) -> Table:
    table = Table(title=title)
    for column in ("id", "function", "status", "tries", "subject", "enqueued (UTC)", "error"):
        table.add_column(column, overflow="fold")
    for run in runs:
        table.add_row(
            run.id,
            run.function,
            run.status,
            f"{run.attempts}/{run.max_tries}",
            run.subject or "",
            _time(run.enqueued_at),
            (run.error_message or "")[:80],
        )
    return table


@app.command("list")
def list_command(
    status: Annotated[JobStatus | None, typer.Option(help="only jobs in this status")] = None,
    function: Annotated[str | None, typer.Option(help="only this job function")] = None,
    since: Annotated[str | None, typer.Option(help="enqueued since: 30m, 2h, 7d or ISO")] = None,
    subject: Annotated[str | None, typer.Option(help="e.g. document:42")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """The newest jobs, optionally filtered."""
    filters = JobFilter(status=status, function=function, subject=subject, since=_since(since))
    page = _run(lambda s: list_jobs(s, filters, limit=limit))
    console.print(_jobs_table(page.jobs, f"{len(page.jobs)} job(s), newest first"))


@app.command()
def show(job_id: str) -> None:
    """One job: arguments (secrets hidden), every attempt, its workflow neighbours."""
    detail = _run(lambda s: job_detail(s, job_id))
    run = detail.run
    console.print(f"[bold]{run.function}[/bold] {run.id}  status=[bold]{run.status}[/bold]")
    console.print(f"tries {run.attempts}/{run.max_tries}  series {run.series}")
    console.print(f"subject {run.subject or '-'}  request id {run.request_id or '-'}")
    console.print(f"enqueued {_time(run.enqueued_at)}  finished {_time(run.finished_at) or '-'}")
    console.print("arguments:", detail.args)
    if run.error_message:
        console.print(f"[red]last error {run.error_type}: {run.error_message}[/red]")
    attempts = Table(title="attempts")
    for column in ("series", "try", "started", "finished", "outcome", "error"):
        attempts.add_column(column, overflow="fold")
    for a in detail.attempts:
        error = f"{a.error_type}: {a.error_message}" if a.error_message else ""
        attempts.add_row(
            str(a.series),
            str(a.attempt),
            _time(a.started_at),
            _time(a.finished_at),
            a.outcome,
            error[:120],
        )
    console.print(attempts)
    if detail.parent:
        console.print(
            f"parent {detail.parent.function} {detail.parent.id} ({detail.parent.status})"
        )
    for child in detail.children:
        console.print(f"child {child.function} {child.id} ({child.status})")


@app.command()
def requeue(
    job_id: Annotated[str | None, typer.Argument(help="the job to run again")] = None,
    all_failed: Annotated[bool, typer.Option("--all-failed", help="every failed job")] = False,
    function: Annotated[str | None, typer.Option(help="with --all-failed: only this")] = None,
) -> None:
    """Run a failed or cancelled job again, or every failed job."""
    if all_failed == (job_id is not None):
        raise typer.BadParameter("give a job id or --all-failed")
    if job_id is not None:
        run = _run(lambda s: control.requeue(s, job_id))
        console.print(f"job {run.id} requeued ({run.function})")
        return
    count = _run(lambda s: control.requeue_failed(s, function))
    console.print(f"requeued {count} failed job(s)")


@app.command()
def cancel(job_id: str) -> None:
    """Cancel a queued, deferred, retrying or running job."""

    async def action(session: AsyncSession) -> JobRun:
        queue = session.info["queue"]
        return await control.cancel(session, queue, job_id)

    run = _run(action)
    console.print(f"job {run.id} cancelled ({run.function})")


@app.command()
def stats() -> None:
    """Counts by status and by function, and the workers."""
    counts = _run(lambda s: job_stats(s))
    since = _time(counts.functions_since)
    table = Table(title=f"jobs by function, enqueued since {since} UTC")
    table.add_column("function")
    for status in JobStatus:
        table.add_column(status.value, justify="right")
    for function, by_status in counts.by_function.items():
        table.add_row(function, *(str(by_status.get(s.value, 0)) for s in JobStatus))
    totals = [f"{counts.by_status.get(s, 0)}{'+' if s in counts.capped else ''}" for s in JobStatus]
    table.add_row("[bold]all time[/bold]", *totals)
    console.print(table)
    _print_workers()


@app.command()
def workers(
    check: Annotated[
        bool, typer.Option("--check", help="exit with status 1 when no worker is live")
    ] = False,
) -> None:
    """Live and stale workers with their heartbeat and job counts."""
    live = _print_workers()
    if check and not live:
        raise typer.Exit(1)


def _print_workers() -> int:
    async def read(session: AsyncSession) -> list[WorkerInfo]:
        return await list_workers(session.info["queue"], get_settings())

    found = _run(read)
    table = Table(title="workers")
    for column in ("worker", "state", "heartbeat", "done", "failed", "retried", "ongoing"):
        table.add_column(column)
    for w in found:
        table.add_row(
            w.name,
            "live" if w.alive else "[red]stale[/red]",
            f"{w.heartbeat_age_s} s ago" if w.alive else "-",
            str(w.jobs_complete),
            str(w.jobs_failed),
            str(w.jobs_retried),
            str(w.jobs_ongoing),
        )
    if not found:
        console.print("[yellow]no worker is running[/yellow]")
    else:
        console.print(table)
    return sum(w.alive for w in found)
