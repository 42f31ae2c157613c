"""E-mail transport: hands one message to an SMTP server (blocking; callers run it in a thread)."""

from __future__ import annotations

import logging
import smtplib
import threading
import time
from dataclasses import KW_ONLY, dataclass, field
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import default
from typing import Any, Protocol

from services.notify.messages.mime import WrittenEmail

log = logging.getLogger(__name__)


class _HeaderClasses(HeaderRegistry):
    """The standard registry, but each header class is built once, not once per header.

    `HeaderRegistry` creates a new class for every header it makes; composing an e-mail
    spent most of its CPU there (and in the garbage collector reclaiming those classes).
    The classes are the same as the standard ones: only their creation is cached, per
    specialised class, so the cache stays as small as the registry.
    """

    def __init__(self) -> None:
        super().__init__()
        self._built: dict[type, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        specialised = self.registry.get(name.lower(), self.default_class)
        built = self._built.get(specialised)
        if built is None:
            built = self._built[specialised] = super().__getitem__(name)
        return built


# `email.policy.default` with the cached header classes: what every e-mail we compose uses.
POLICY = default.clone(header_factory=_HeaderClasses())


def new_message() -> EmailMessage:
    return EmailMessage(policy=POLICY)


class Mailer(Protocol):
    def send(self, message: EmailMessage | WrittenEmail) -> None: ...


class _Session(smtplib.SMTP):
    """An SMTP connection that knows whether the current message went past MAIL/RCPT:
    from the DATA command on, the server may have accepted it."""

    data_started = False

    def data(self, msg: Any) -> tuple[int, bytes]:
        self.data_started = True
        return super().data(msg)


def _lost_before_data(error: Exception) -> bool:
    """The connection was found gone (closed, reset, or the server's 421 "closing") while
    starting a message: nothing of the message was handed over."""
    if isinstance(error, smtplib.SMTPServerDisconnected | ConnectionError):
        return True
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return bool(error.recipients) and all(code == 421 for code, _ in error.recipients.values())
    return isinstance(error, smtplib.SMTPResponseException) and error.smtp_code == 421


@dataclass(eq=False)  # one pool is one pool: compared and hashed by identity
class SmtpMailer:
    """Keeps SMTP sessions open between messages instead of one session per message.

    Each message takes an idle session (or opens one) for itself, so concurrent senders
    never share one; a session that saw any error is closed, never reused. A session kept
    idle may have been closed by the server meanwhile: when that shows *before the DATA
    command* (at MAIL FROM or RCPT TO), the server holds no part of the message, and it is
    handed once more to a new session. From DATA on, the server may have accepted it, so an
    error then is raised as before (the sender's retry rules decide), never resent here.
    Sessions idle for `idle_seconds` are closed (QUIT), as are all of them on `close()`.
    """

    host: str
    port: int
    sender: str
    _: KW_ONLY
    timeout: float = 10.0
    idle_seconds: float = 5.0
    max_idle: int = 8
    sessions_opened: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _idle: list[tuple[_Session, float]] = field(  # oldest first, with when it was left
        default_factory=list, init=False, repr=False
    )
    _reaper: threading.Thread | None = field(default=None, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    @property
    def idle_sessions(self) -> int:
        with self._lock:
            return len(self._idle)

    def send(self, message: EmailMessage | WrittenEmail) -> None:
        session, reused = self._take()
        try:
            self._transfer(session, message)
        except BaseException as error:
            _quit(session)
            lost = isinstance(error, Exception) and _lost_before_data(error)
            if not (reused and lost and not session.data_started):
                raise
            log.info("smtp session found closed before the message (%s); opening another", error)
            session = self._open()
            try:
                self._transfer(session, message)
            except BaseException:
                _quit(session)
                raise
        self._leave(session)

    def close(self) -> None:
        """Close the idle sessions; a message sent afterwards uses a session of its own."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
            self._changed.notify_all()
        for session, _ in idle:
            _quit(session)

    def _transfer(self, session: _Session, message: EmailMessage | WrittenEmail) -> None:
        session.data_started = False
        if isinstance(message, WrittenEmail):  # already in its wire form: sent as it is
            session.sendmail(self.sender, [message.to], message.data)
        else:
            session.send_message(message, from_addr=self.sender)

    def _open(self) -> _Session:
        session = _Session(self.host, self.port, timeout=self.timeout)
        with self._lock:
            self.sessions_opened += 1
        return session

    def _take(self) -> tuple[_Session, bool]:
        expired: list[_Session] = []
        taken: _Session | None = None
        with self._lock:
            now = time.monotonic()
            while self._idle:
                session, left = self._idle.pop()  # the most recently used
                if now - left < self.idle_seconds:
                    taken = session
                    break
                expired.append(session)
        for session in expired:
            _quit(session)
        if taken is not None:
            return taken, True
        return self._open(), False

    def _leave(self, session: _Session) -> None:
        with self._lock:
            keep = not self._closed and len(self._idle) < self.max_idle
            if keep:
                self._idle.append((session, time.monotonic()))
                if self._reaper is None:
                    self._reaper = threading.Thread(
                        target=self._reap, name="smtp-idle-closer", daemon=True
                    )
                    self._reaper.start()
        if not keep:
            _quit(session)

    def _reap(self) -> None:
        """Close sessions left idle too long; ends when none is left (restarted on demand)."""
        while True:
            with self._lock:
                now = time.monotonic()
                expired: list[_Session] = []
                while self._idle and now - self._idle[0][1] >= self.idle_seconds:
                    expired.append(self._idle.pop(0)[0])
                if not expired:
                    if not self._idle:
                        self._reaper = None
                        return
                    self._changed.wait(self._idle[0][1] + self.idle_seconds - now)
                    continue
            for session in expired:
                _quit(session)


def _quit(session: smtplib.SMTP) -> None:
    """End a session politely if it answers quickly, and free its socket in any case."""
    try:
        if session.sock is not None:
            session.sock.settimeout(min(session.timeout, 2.0))
            session.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        session.close()


def is_transient(error: Exception) -> bool:
    """Worth retrying: the network, the server, or a 4xx — not a refused recipient or body."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return any(code < 500 for code, _ in error.recipients.values())
    if isinstance(error, smtplib.SMTPDataError):
        return error.smtp_code < 500
    # Everything else SMTP raises is an OSError (refused connection, timeout,
    # disconnect, 4xx, and a refused MAIL FROM, which is our misconfiguration
    # and must hold mail back rather than drop it).
    return isinstance(error, OSError)
