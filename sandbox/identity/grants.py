"""What the provider remembers between requests: pending sign-ins, codes, provider sessions
and refresh tokens. Kept in memory: a restart signs everyone out of the provider (their
access tokens stay valid, the signing key is on disk), as a dev IdP may.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field, replace

CODE_TTL = 60  # seconds; OAuth 2.1 recommends a short life for authorization codes
PENDING_TTL = 10 * 60
SESSION_TTL = 8 * 60 * 60
REFRESH_TTL = 8 * 60 * 60


@dataclass(frozen=True)
class Authorization:
    """One validated authorization request (`GET /authorize`)."""

    client_id: str
    redirect_uri: str
    scope: str
    state: str | None
    nonce: str | None
    code_challenge: str


@dataclass(frozen=True)
class Grant:
    """What a code or a refresh token stands for: a person's sign-in for a client."""

    username: str
    client_id: str
    scope: str
    nonce: str | None
    auth_time: int
    redirect_uri: str = ""
    code_challenge: str = ""
    expires: float = 0.0
    refresh_family: str = field(default_factory=lambda: secrets.token_urlsafe(16))


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6, S256: BASE64URL(SHA256(verifier)) equals the challenge."""
    if not 43 <= len(verifier) <= 128:
        return False
    digest = hashlib.sha256(verifier.encode("ascii", errors="replace")).digest()
    computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return hmac.compare_digest(computed, challenge)


class Grants:
    """Thread-safe: FastAPI runs the sync endpoints in a thread pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[Authorization, float]] = {}
        self._codes: dict[str, Grant] = {}
        self._used_codes: dict[str, str] = {}  # code → refresh family it started
        self._sessions: dict[str, tuple[str, int, float]] = {}  # id → username, auth_time, exp
        self._refresh: dict[str, Grant] = {}

    def hold(self, request: Authorization) -> str:
        """Keep a request while its sign-in form is shown; answers the form's handle."""
        handle = secrets.token_urlsafe(24)
        with self._lock:
            self._sweep()
            self._pending[handle] = (request, time.time() + PENDING_TTL)
        return handle

    def pending(self, handle: str) -> Authorization | None:
        with self._lock:
            held = self._pending.get(handle)
            return held[0] if held and held[1] > time.time() else None

    def drop_pending(self, handle: str) -> None:
        with self._lock:
            self._pending.pop(handle, None)

    def issue_code(self, request: Authorization, username: str, auth_time: int) -> str:
        code = secrets.token_urlsafe(32)
        grant = Grant(
            username=username,
            client_id=request.client_id,
            scope=request.scope,
            nonce=request.nonce,
            auth_time=auth_time,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            expires=time.time() + CODE_TTL,
        )
        with self._lock:
            self._codes[code] = grant
        return code

    def redeem_code(self, code: str) -> Grant | None:
        """The code's grant, once: a second redemption answers None and revokes the refresh
        tokens the first one gave (RFC 6749 §4.1.2: a replayed code may be stolen)."""
        with self._lock:
            grant = self._codes.pop(code, None)
            if grant is None:
                family = self._used_codes.get(code)
                if family is not None:
                    self._revoke_family(family)
                return None
            self._used_codes[code] = grant.refresh_family
            return grant if grant.expires > time.time() else None

    def issue_refresh(self, grant: Grant) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._refresh[token] = replace(grant, expires=time.time() + REFRESH_TTL)
        return token

    def rotate_refresh(self, token: str) -> Grant | None:
        """The grant behind a refresh token, which is spent: each refresh gives a new one."""
        with self._lock:
            grant = self._refresh.pop(token, None)
        return grant if grant is not None and grant.expires > time.time() else None

    def open_session(self, username: str) -> tuple[str, int]:
        session, now = secrets.token_urlsafe(32), int(time.time())
        with self._lock:
            self._sessions[session] = (username, now, time.time() + SESSION_TTL)
        return session, now

    def session(self, session: str | None) -> tuple[str, int] | None:
        """The signed-in username and when they signed in, for a live session cookie."""
        with self._lock:
            held = self._sessions.get(session or "")
        if held is None or held[2] <= time.time():
            return None
        return held[0], held[1]

    def end_session(self, session: str | None) -> None:
        with self._lock:
            self._sessions.pop(session or "", None)

    def _revoke_family(self, family: str) -> None:
        for token in [t for t, g in self._refresh.items() if g.refresh_family == family]:
            del self._refresh[token]

    def _sweep(self) -> None:
        now = time.time()
        for handle in [h for h, (_, exp) in self._pending.items() if exp <= now]:
            del self._pending[handle]
        for code in [c for c, g in self._codes.items() if g.expires <= now - CODE_TTL]:
            del self._codes[code]
