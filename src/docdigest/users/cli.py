"""`docdigest users ...`: account chores for operators."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from sqlalchemy import select

from docdigest.core.db import create_engine, create_sessionmaker
from docdigest.settings import get_settings
from docdigest.users.models import User

app = typer.Typer(help="Manage accounts.", no_args_is_help=True)


async def _set_admin(email: str, is_admin: bool) -> str | None:
    """The account's stored email, or None when there is no such account."""
    settings = get_settings()
    engine = create_engine(settings.database_url)
    try:
        async with create_sessionmaker(engine, settings=settings)() as session:
            user = await session.scalar(select(User).where(User.email == email.strip().lower()))
            if user is None:
                return None
            user.is_admin = is_admin
            await session.commit()
            return user.email
    finally:
        await engine.dispose()


@app.command("make-admin")
def make_admin(
    email: Annotated[str, typer.Argument(help="the account's email address")],
    revoke: Annotated[bool, typer.Option("--revoke", help="take admin rights away")] = False,
) -> None:
    """Give an account admin rights (the jobs dashboard and its API)."""
    stored = asyncio.run(_set_admin(email, not revoke))
    if stored is None:
        typer.echo(f"No account with the email {email}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"{stored} is {'no longer' if revoke else 'now'} an admin.")
