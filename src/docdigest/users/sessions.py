"""Server-side login sessions and personal access tokens: opaque tokens, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from docdigest.core.batch import STALLED_S, GroupCommit
from docdigest.core.db import lookup_connection, utcnow
from docdigest.core.rows import detached
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
# Core statements, read into detached users (`detached`): no ORM loading.
_ACCESS_TOKEN_USERS = (
    select(
        AccessToken.id.label("token_id"),
        AccessToken.token_hash.label("token_hash"),
        AccessToken.last_used_at.label("token_last_used_at"),
        *User.__table__.c,
    )
    .join(User, User.id == AccessToken.user_id)
    .where(AccessToken.token_hash.in_(bindparam("token_hashes", expanding=True)))
)
# One query for sessions and their users. An expired row goes at its user's next
# login (see open_session).
_SESSION_USERS = (
    select(LoginSession.token_hash.label("token_hash"), *User.__table__.c)
    .join(User, User.id == LoginSession.user_id)
    .where(
        LoginSession.token_hash.in_(bindparam("token_hashes", expanding=True)),
        LoginSession.expires_at > bindparam("now"),
    )
)
#: How stale an access token's `last_used_at` may be before a use writes it again.
LAST_USED_PRECISION = timedelta(minutes=5)


async def users_for_tokens(conn: AsyncConnection, tokens: Sequence[str]) -> list[User | None]:
    """The user each session token or personal access token belongs to, or None where
    it is unknown or no longer valid; in at most two queries, one for login sessions
    and one for access tokens, and an update of the access tokens' last use when it
    is older than `LAST_USED_PRECISION` (the caller commits).

    The users belong to no session: read them, do not change them.
    """
    now = utcnow()
    hashes = [hash_token(token) for token in tokens]
    pat_hashes = {h for t, h in zip(tokens, hashes, strict=True) if t.startswith(PAT_PREFIX)}
    session_hashes = set(hashes) - pat_hashes
    found: dict[str, User] = {}
    if session_hashes:
        sessions = await conn.execute(
            _SESSION_USERS, {"token_hashes": sorted(session_hashes), "now": now}
        )
        found.update((row.token_hash, detached(User, row._mapping)) for row in sessions)
    if pat_hashes:
        pats = (await conn.execute(_ACCESS_TOKEN_USERS, {"token_hashes": sorted(pat_hashes)})).all()
        found.update((row.token_hash, detached(User, row._mapping)) for row in pats)
        stale = [
            row.token_id
            for row in pats
            if row.token_last_used_at is None or now - row.token_last_used_at > LAST_USED_PRECISION
        ]
        if stale:
            await conn.execute(
                update(AccessToken).where(AccessToken.id.in_(stale)).values(last_used_at=now)
            )
    return [found.get(token_hash) for token_hash in hashes]


class TokenCheck:
    """Checks the tokens of one process's requests, several in one lookup.

    Tokens that arrive while a lookup is running share the next one, as uploads
    share a transaction (`core/batch.py`): under load, most of a check's cost is the
    lookup's fixed cost, paid once for many requests. A lone token is looked up at
    once. Each lookup is a short transaction of its own, so no request holds a
    database connection after its check.

    The users it returns are detached from any session and may be shared between
    requests: read them, do not change them.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._lookups: GroupCommit[str, User | None] = GroupCommit(
            self._look_up, writers=2, spare_after=STALLED_S
        )

    async def user(self, token: str) -> User | None:
        return await self._lookups.submit(token)

    async def wait_idle(self) -> None:
        await self._lookups.wait_idle()

    async def _look_up(self, tokens: Sequence[str]) -> list[User | None]:
        async with lookup_connection(self._engine) as conn:
            return await users_for_tokens(conn, tokens)


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
