"""One refresh at a time per session: the provider rotates refresh tokens (each refresh spends
the one it was given), so two requests of one session refreshing at once would spend the same
token twice, and the second would be refused (`invalid_grant`) and sign the person out.

In this process, refreshes of one session id take turns under a lock; a request that waited
finds the token it holds already spent by the one before it, and takes that refresh's result
instead of asking again. Another process (a replica) shares only the session table: when the
provider refuses a token as spent, the stored session is read again for the tokens the other
process got, and stored at once after every refresh so that it finds them soon.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

# What a refresh changes in a session (the rest — CSRF token, language, views — is the request's).
TOKEN_FIELDS = ("access_token", "refresh_token", "expires_at", "username", "roles")
REMEMBERED_SECONDS = 60.0  # a refresh's result is offered to waiters this long
# How long a refused refresh waits for another process's result: it stores it right after the
# provider's answer, so this is a short wait; a token revoked for real signs out after it.
REREAD_SECONDS = 1.0
REREAD_EVERY = 0.1

Session = dict[str, Any]
Reread = Callable[[], Awaitable[Session | None]]
Save = Callable[[Session], Awaitable[None]]


class Spent(Exception):
    """The provider refused the refresh token as unknown, spent or expired (`invalid_grant`)."""


@dataclass
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    spent: str | None = None  # the refresh token the last refresh spent …
    renewed: Session | None = None  # … and the token fields it gave
    at: float = 0.0


class SingleFlight:
    """Per session id: a lock, and the last refresh's spent token and result."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._flights: OrderedDict[str, _Flight] = OrderedDict()
        self._clock = clock

    def _flight(self, session_id: str) -> _Flight:
        now = self._clock()
        # Forget sessions idle for a while (oldest first), unless a refresh is under way.
        while self._flights:
            oldest = next(iter(self._flights.values()))
            if oldest.lock.locked() or now - oldest.at < REMEMBERED_SECONDS:
                break
            self._flights.popitem(last=False)
        flight = self._flights.pop(session_id, None) or _Flight()
        flight.at = now
        self._flights[session_id] = flight
        return flight

    async def refresh(
        self,
        session_id: str | None,
        session: Session,
        renew: Callable[[str], Awaitable[Session]],
        *,
        reread: Reread | None = None,
        save: Save | None = None,
    ) -> bool:
        """Put fresh tokens in `session` (renewed with its refresh token, or taken from the
        refresh that spent it); False when the provider refuses it and no other refresh of
        this session has stored new ones (the person signs in again)."""
        if session_id is None:  # nothing stored to share (a signed-in session always is)
            return await _renewed(session, renew, reread=None, save=None)
        flight = self._flight(session_id)
        async with flight.lock:
            held = session.get("refresh_token")
            if flight.renewed is not None and held == flight.spent:
                session.update(flight.renewed)  # the request before this one refreshed it
                return True
            if not await _renewed(session, renew, reread=reread, save=save):
                return False
            flight.spent, flight.at = held, self._clock()
            flight.renewed = {name: session.get(name) for name in TOKEN_FIELDS}
            return True


async def _renewed(
    session: Session,
    renew: Callable[[str], Awaitable[Session]],
    *,
    reread: Reread | None,
    save: Save | None,
) -> bool:
    held = str(session.get("refresh_token") or "")
    try:
        renewed = await renew(held)
    except Spent:
        return await _taken_from_store(session, held, reread)
    session.update(renewed)
    if save is not None:
        await save(session)  # now, not as the answer starts: other processes look for it
    return True


async def _taken_from_store(session: Session, spent: str, reread: Reread | None) -> bool:
    """The tokens another process stored after spending `spent` itself, if it does in time."""
    if reread is None:
        return False
    deadline = time.monotonic() + REREAD_SECONDS
    while True:
        stored = await reread()
        if stored is None:  # signed out meanwhile
            return False
        if stored.get("refresh_token") not in (None, spent):
            session.update({name: stored.get(name) for name in TOKEN_FIELDS})
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(REREAD_EVERY)
