"""Web logins: a key typed into the login form becomes a session held in this process.

The cookie carries only a random session id, signed (itsdangerous, with its age) and HttpOnly,
so page scripts never see the key and a forged or stale cookie is refused before any lookup.
The key itself stays in the server's memory: the page's own calls to ``/v1`` (the playground's
streaming chat) pass the gateway with it, so they are admitted, rate-limited, billed and logged
exactly as a client's would be.

Those calls must also carry the session's CSRF token in a header (``X-Rung-CSRF``): another
site cannot set a custom header without CORS consent, and the cookie is SameSite=Strict too.

Sessions live in this process's memory and end with it, so the signing secret is a random one
per start: a cookie of an earlier start is refused by its signature. Several replicas behind
one address need sticky sessions for the page.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import Scope

__all__ = ["COOKIE", "CSRF_HEADER", "WebSession", "WebSessions"]

COOKIE = "rung_session"
CSRF_HEADER = b"x-rung-csrf"
#: sessions held at most; past it the oldest go, so made-up logins cannot grow memory forever
MAX_SESSIONS = 10_000


@dataclass(frozen=True)
class WebSession:
    key: str
    key_id: str | None
    name: str | None
    admin: bool
    csrf: str
    started: float


class WebSessions:
    def __init__(
        self,
        max_age_s: float,
        secret: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        from itsdangerous import TimestampSigner

        self.max_age_s = max_age_s
        self.clock = clock
        self._signer = TimestampSigner(
            secret or secrets.token_hex(32),
            salt="rung-web-session",
        )
        self._sessions: dict[str, WebSession] = {}

    def open(self, key: str, key_id: str | None, name: str | None, admin: bool) -> str:
        """A new session for ``key``; the cookie value that names it."""
        if len(self._sessions) >= MAX_SESSIONS:
            oldest = min(self._sessions, key=lambda sid: self._sessions[sid].started)
            del self._sessions[oldest]
        sid = secrets.token_urlsafe(32)
        self._sessions[sid] = WebSession(
            key, key_id, name, admin, secrets.token_urlsafe(24), self.clock()
        )
        return self._signer.sign(sid).decode("ascii")

    def get(self, cookie: str | None) -> WebSession | None:
        sid = self._sid(cookie)
        if sid is None:
            return None
        session = self._sessions.get(sid)
        if session is not None and self.clock() - session.started > self.max_age_s:
            del self._sessions[sid]
            return None
        return session

    def close(self, cookie: str | None) -> None:
        sid = self._sid(cookie)
        if sid is not None:
            self._sessions.pop(sid, None)

    def authorization(self, scope: Scope) -> str | None:
        """The Authorization header a ``/v1`` call from the page stands for: the session's key,
        when the call has the session cookie and its CSRF token; else None."""
        cookie = csrf = None
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = _cookie(value.decode("latin-1"))
            elif name == CSRF_HEADER:
                csrf = value.decode("latin-1")
        session = self.get(cookie)
        if session is None or csrf is None or not secrets.compare_digest(csrf, session.csrf):
            return None
        return f"Bearer {session.key}"

    def _sid(self, cookie: str | None) -> str | None:
        from itsdangerous import BadSignature

        if not cookie:
            return None
        try:
            return self._signer.unsign(cookie, max_age=int(self.max_age_s)).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None


def _cookie(header: str) -> str | None:
    for part in header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE:
            return value
    return None
