"""Accounts: sign up, log in, settings, and deleting an account with everything in it."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from redis.asyncio import Redis
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.errors import Conflict, Unauthorized, Unprocessable
from docdigest.documents.removal import remove_user_documents
from docdigest.documents.storage import Storage
from docdigest.jobs import enqueue
from docdigest.jobs.enqueue import settings_of
from docdigest.mail.models import OutboxMessage
from docdigest.users.jobs import send_onboarding_nudge, send_welcome_email
from docdigest.users.models import User
from docdigest.users.passwords import hash_password, password_problem, verify_password
from docdigest.users.ratelimit import LoginThrottle
from docdigest.users.sessions import close_all_sessions


def normalize_email(email: str) -> str:
    """The canonical form we store and look up; raises Unprocessable when invalid."""
    try:
        valid = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise Unprocessable("Check the highlighted fields.", errors={"email": str(exc)}) from exc
    return valid.normalized.lower()


async def sign_up(session: AsyncSession, *, email: str, name: str, password: str) -> User:
    settings = settings_of(session)
    errors: dict[str, str] = {}
    try:
        email = normalize_email(email)
    except Unprocessable as exc:
        errors |= exc.detail["errors"]
    name = name.strip()
    if not name:
        errors["name"] = "Tell us your name."
    elif len(name) > 200:
        errors["name"] = "Use at most 200 characters."
    problem = password_problem(password, email=email, min_length=settings.password_min_length)
    if problem:
        errors["password"] = problem
    if errors:
        raise Unprocessable("Check the highlighted fields.", errors=errors)

    if await session.scalar(select(User.id).where(User.email == email)) is not None:
        raise _email_taken()
    user = User(
        email=email,
        name=name,
        password_hash=await hash_password(password),
        digest_hour=settings.digest_hour,
        timezone=settings.timezone,
    )
    try:
        async with session.begin_nested():
            session.add(user)
    except IntegrityError as exc:  # a concurrent signup with the same email won
        raise _email_taken() from exc

    await enqueue(session, send_welcome_email, key=f"welcome:{user.id}", user_id=user.id)
    if settings.onboarding_nudge_after_hours is not None:
        await enqueue(
            session,
            send_onboarding_nudge,
            key=f"nudge:{user.id}",
            defer_by=timedelta(hours=settings.onboarding_nudge_after_hours),
            user_id=user.id,
        )
    return user


def _email_taken() -> Conflict:
    return Conflict(
        "An account with this email already exists. Log in instead.",
        errors={"email": "An account with this email already exists."},
    )


async def authenticate(
    session: AsyncSession, *, email: str, password: str, ip: str, redis: Redis | None = None
) -> User:
    """The user with these credentials; 401 when wrong, 429 after too many failures.

    Failures are counted in Redis (the session's queue connection unless given).
    """
    settings = settings_of(session)
    try:
        email = normalize_email(email)
    except Unprocessable:
        email = email.strip().lower()  # cannot match an account, but still counts as a try
    redis = redis if redis is not None else session.info.get("queue")
    throttle = LoginThrottle(redis, settings) if redis is not None else None
    if throttle is not None:
        await throttle.check(email, ip)
    user = await session.scalar(select(User).where(User.email == email))
    if not await verify_password(password, user.password_hash if user else None):
        if throttle is not None:
            await throttle.failed(email, ip)
        raise Unauthorized("Wrong email or password.")
    if throttle is not None:
        await throttle.succeeded(email, ip)
    assert user is not None
    return user


async def update_profile(
    session: AsyncSession,
    user: User,
    *,
    name: str | None = None,
    digest_opt_in: bool | None = None,
    digest_hour: int | None = None,
    timezone: str | None = None,
) -> User:
    errors: dict[str, str] = {}
    if name is not None:
        name = name.strip()
        if not name or len(name) > 200:
            errors["name"] = "Use between 1 and 200 characters."
    if digest_hour is not None and not 0 <= digest_hour <= 23:
        errors["digest_hour"] = "Pick an hour from 0 to 23."
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = f"Unknown time zone: {timezone}"
    if errors:
        raise Unprocessable("Check the highlighted fields.", errors=errors)
    if name is not None:
        user.name = name
    if digest_opt_in is not None:
        user.digest_opt_in = digest_opt_in
    if digest_hour is not None:
        user.digest_hour = digest_hour
    if timezone is not None:
        user.timezone = timezone
    await session.flush()
    return user


async def change_password(
    session: AsyncSession,
    user: User,
    *,
    current_password: str,
    new_password: str,
    keep_token: str | None,
) -> None:
    """Set a new password and log out every other session (the current one stays)."""
    if not await verify_password(current_password, user.password_hash):
        raise Unprocessable(
            "Your current password is not correct.",
            errors={"current_password": "This is not your current password."},
        )
    settings = settings_of(session)
    problem = password_problem(
        new_password, email=user.email, min_length=settings.password_min_length
    )
    if problem:
        raise Unprocessable("Choose another password.", errors={"new_password": problem})
    user.password_hash = await hash_password(new_password)
    await close_all_sessions(session, user.id, keep_token=keep_token)


async def delete_account(
    session: AsyncSession, user: User, *, password: str, storage: Storage
) -> None:
    """Delete the user with their documents, files, sessions and tokens."""
    if not await verify_password(password, user.password_hash):
        raise Unprocessable(
            "Your password is not correct; the account was not deleted.",
            errors={"password": "This is not your password."},
        )
    # Rows now; the files go once this commits (a failed commit must keep them).
    await remove_user_documents(session, storage, user.id)
    # The outbox would keep the address; ids are never reused, so its keys can go too.
    await session.execute(delete(OutboxMessage).where(OutboxMessage.to == user.email))
    await session.delete(user)
    await session.flush()
