"""Server-side login sessions and personal access tokens: opaque tokens, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from docdigest.core.db import utcnow
from docdigest.jobs.enqueue import settings_of
from docdigest.users.models import AccessToken, LoginSession, User

#: Personal access tokens carry a prefix so a leaked one is recognisable (and greppable).
PAT_PREFIX = "ddp_"


def hash_token(token: str) -> str:
    # The tokens are 256 random bits, so a plain hash suffices (no salt, no slow KDF).
    return hashlib.sha256(token.encode()).hexdigest()


async def open_session(session: AsyncSession, user: User) -> str:
    """Start a login session for `user`; returns the token the client keeps."""
    now = utcnow()
    await session.execute(
        delete(LoginSession).where(LoginSession.user_id == user.id, LoginSession.expires_at <= now)
    )
    token = secrets.token_urlsafe(32)
    max_age = timedelta(hours=settings_of(session).session_max_age_hours)
    session.add(
        LoginSession(user_id=user.id, token_hash=hash_token(token), expires_at=now + max_age)
    )
    await session.flush()
    return token


async def close_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(LoginSession).where(LoginSession.token_hash == hash_token(token)))


async def close_all_sessions(
    session: AsyncSession, user_id: int, *, keep_token: str | None = None
) -> None:
    statement = delete(LoginSession).where(LoginSession.user_id == user_id)
    if keep_token is not None:
        statement = statement.where(LoginSession.token_hash != hash_token(keep_token))
    await session.execute(statement)


# Built once: they run on every authenticated request, and a statement object keeps
# its SQLAlchemy cache key, so only the parameters change from one request to the next.
_ACCESS_TOKEN = select(AccessToken).where(AccessToken.token_hash == bindparam("token_hash"))
# One query for session and user. An expired row goes at this user's next login
# (see open_session).
_SESSION_USER = (
    select(User)
    .join(LoginSession, LoginSession.user_id == User.id)
    .where(
        LoginSession.token_hash == bindparam("token_hash"),
        LoginSession.expires_at > bindparam("now"),
    )
)


async def user_for_token(session: AsyncSession, token: str) -> User | None:
    """The user a session token or personal access token belongs to, if it is still valid."""
    now = utcnow()
    if token.startswith(PAT_PREFIX):
        pat = await session.scalar(_ACCESS_TOKEN, {"token_hash": hash_token(token)})
        if pat is None:
            return None
        if pat.last_used_at is None or now - pat.last_used_at > timedelta(minutes=5):
            pat.last_used_at = now
        return await session.get(User, pat.user_id)
    return await session.scalar(_SESSION_USER, {"token_hash": hash_token(token), "now": now})


async def create_access_token(
    session: AsyncSession, user: User, name: str
) -> tuple[AccessToken, str]:
    token = PAT_PREFIX + secrets.token_urlsafe(32)
    pat = AccessToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:10])
    session.add(pat)
    await session.flush()
    return pat, token


async def list_access_tokens(session: AsyncSession, user_id: int) -> list[AccessToken]:
    rows = await session.scalars(
        select(AccessToken).where(AccessToken.user_id == user_id).order_by(AccessToken.id.desc())
    )
    return list(rows)


async def revoke_access_token(session: AsyncSession, user_id: int, token_id: int) -> bool:
    result = await session.execute(
        delete(AccessToken).where(AccessToken.id == token_id, AccessToken.user_id == user_id)
    )
    return bool(getattr(result, "rowcount", 0))
