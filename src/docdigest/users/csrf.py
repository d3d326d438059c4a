"""CSRF tokens: bound to the login session, or to a random cookie before login.

A token is HMAC(secret_key, cookie value), so it cannot be derived without the
server's key and changes whenever the session does (login rotates it). Forms
send it in a hidden `csrf_token` field, JavaScript in the `X-CSRF-Token` header.
Requests authenticated by `Authorization: Bearer` need none: a browser never
adds that header on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from fastapi import Request
from starlette.types import Message, Receive, Scope, Send

from docdigest.core.errors import Forbidden
from docdigest.core.middleware import HttpMiddleware
from docdigest.settings import Settings

SESSION_COOKIE = "docdigest_session"
CSRF_COOKIE = "docdigest_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _sign(settings: Settings, purpose: str, value: str) -> str:
    key = settings.secret_key.get_secret_value().encode()
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def csrf_token_for_session(settings: Settings, session_token: str) -> str:
    return _sign(settings, "session", session_token)


def csrf_token(request: Request) -> str:
    """The token a page must send back with its next state-changing request."""
    settings: Settings = request.app.state.settings
    session_token = request.cookies.get(SESSION_COOKIE)
    if session_token:
        return csrf_token_for_session(settings, session_token)
    seed = request.cookies.get(CSRF_COOKIE) or getattr(request.state, "new_csrf_seed", None)
    if seed is None:
        # No cookie yet (first visit): CsrfCookieMiddleware sets this one on the response.
        seed = secrets.token_urlsafe(24)
        request.state.new_csrf_seed = seed
    return _sign(settings, "anonymous", seed)


def is_bearer(request: Request) -> bool:
    return request.headers.get("authorization", "").lower().startswith("bearer ")


def _is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").startswith(FORM_TYPES)


async def check_csrf(request: Request) -> None:
    """Reject a state-changing request that rides on cookies without the page's token."""
    if request.method in SAFE_METHODS or is_bearer(request):
        return
    has_cookie = SESSION_COOKIE in request.cookies or CSRF_COOKIE in request.cookies
    if not has_cookie and not _is_form(request):
        return  # an anonymous API call: no ambient credentials to abuse
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and _is_form(request):
        value = (await request.form()).get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    expected = csrf_token(request)
    # Bytes: compare_digest refuses non-ASCII str, and a header may carry anything.
    if not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Forbidden(
            "The form has expired or did not come from this site (CSRF check failed). "
            "Reload the page and try again.",
        )


class CsrfCookieMiddleware(HttpMiddleware):
    """Sets the pre-login CSRF cookie on responses whose page asked for a token."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Created here so that the routes' copies of the scope share this one dict.
        state = scope.setdefault("state", {})

        async def send_with_cookie(message: Message) -> None:
            seed = state.get("new_csrf_seed")
            if message["type"] == "http.response.start" and seed:
                secure = "; Secure" if scope.get("scheme") == "https" else ""
                cookie = f"{CSRF_COOKIE}={seed}; Path=/; HttpOnly; SameSite=Lax{secure}"
                message["headers"] = [*message.get("headers", []), (b"set-cookie", cookie.encode())]
            await send(message)

        await self.app(scope, receive, send_with_cookie)
