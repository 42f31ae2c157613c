"""Local SMTP mail sink: a real aiosmtpd server that keeps, and optionally files, every message."""

from __future__ import annotations

import logging
import re
import signal
import socket
import sys
import threading
from email import policy
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from pathlib import Path
from types import FrameType
from typing import Any

from aiosmtpd.controller import Controller

from sandbox.serving import (
    DEFAULT_HOST,
    EXIT_BAD_CONFIG,
    Served,
    data_dir_from_env,
    host_from_env,
    port_from_env,
)

log = logging.getLogger("sandbox.mailsink")

DEFAULT_PORT = 8025
READY_TIMEOUT_SECONDS = 5.0
_SEQUENCE_WIDTH = 6
_PARSER = BytesParser(policy=policy.default)
# For the one log line per message: the legacy policy keeps raw header strings, which
# costs a small fraction of the modern header classes (decoded below, only for logging).
_HEADER_PARSER = BytesHeaderParser(policy=policy.compat32)
_FOLD = re.compile(r"\r?\n(?=[ \t])")


def parse_message(raw: bytes) -> EmailMessage:
    """Parse raw RFC 5322 bytes into an EmailMessage (modern policy, decoded headers)."""
    message = _PARSER.parsebytes(raw)
    if not isinstance(message, EmailMessage):  # policy.default always yields EmailMessage
        raise TypeError(f"unexpected message type {type(message).__name__}")
    return message


def summary_headers(raw: bytes, names: tuple[str, ...]) -> dict[str, str | None]:
    """Some headers of raw message bytes, unfolded and decoded (RFC 2047), cheaply: without
    parsing the body or building the modern header objects. A missing header is None."""
    headers = _HEADER_PARSER.parsebytes(raw[: _header_end(raw)])
    found: dict[str, str | None] = {}
    for name in names:
        value = headers.get(name)
        found[name] = None if value is None else _decoded(str(value))
    return found


def _header_end(raw: bytes) -> int:
    """Where the header block ends (the blank line after it; the end when there is none):
    the header parser still reads the whole text it is given, body and all."""
    ends = [at + len(blank) for blank in (b"\r\n\r\n", b"\n\n") if (at := raw.find(blank)) >= 0]
    return min(ends, default=len(raw))


def _decoded(value: str) -> str:
    unfolded = _FOLD.sub("", value)
    try:
        return str(make_header(decode_header(unfolded)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return unfolded


def _sequence_of(path: Path) -> int | None:
    return int(path.stem) if path.stem.isdigit() else None


def _mailbox_files(mail_dir: Path) -> list[Path]:
    numbered = [(_sequence_of(path), path) for path in mail_dir.glob("*.eml")]
    return [path for seq, path in sorted(numbered, key=lambda item: item[0] or 0) if seq]


def read_mailbox(mail_dir: Path) -> list[EmailMessage]:
    """Parse every filed message in ``mail_dir``, in arrival order."""
    if not Path(mail_dir).is_dir():
        return []
    return [parse_message(path.read_bytes()) for path in _mailbox_files(Path(mail_dir))]


def _free_port(host: str) -> int:
    # Controller needs a concrete port; the tiny race until it binds is acceptable locally.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class _Mailbox:
    """Thread-safe store shared by the SMTP loop thread and callers waiting for mail.

    Receiving keeps the raw bytes only (and files them); a message is parsed the first time
    someone asks for the messages, then kept parsed. A sink nobody reads in-process (the
    local stack's, which only files mail) never pays for parsing, and with `keep` false
    holds nothing in memory: its mail is in the folder only, so a stack that runs for weeks
    does not grow by every message it was sent.
    """

    def __init__(self, mail_dir: Path | None, *, keep: bool = True) -> None:
        self._mail_dir = mail_dir
        self._keep = keep
        self._raw: list[bytes] = []
        self._parsed: list[EmailMessage] = []  # a prefix of _raw, parsed
        self._arrived = threading.Condition()
        self._last_sequence = 0

    def prepare(self) -> None:
        """Create the mail folder and continue numbering after any files already in it."""
        if self._mail_dir is None:
            return
        self._mail_dir.mkdir(parents=True, exist_ok=True)
        files = _mailbox_files(self._mail_dir)
        last = (_sequence_of(files[-1]) or 0) if files else 0
        with self._arrived:
            self._last_sequence = last

    def add(self, raw: bytes) -> int:
        with self._arrived:
            self._last_sequence += 1
            sequence = self._last_sequence
            self._file(sequence, raw)
            if self._keep:
                self._raw.append(raw)
            self._arrived.notify_all()
        return sequence

    def _file(self, sequence: int, raw: bytes) -> None:
        if self._mail_dir is None:
            return
        name = f"{sequence:0{_SEQUENCE_WIDTH}d}.eml"
        # Write then rename so a reader of the folder never parses half a message.
        partial = self._mail_dir / f".{name}.partial"
        partial.write_bytes(raw)
        partial.replace(self._mail_dir / name)

    def _parsed_so_far(self) -> list[EmailMessage]:
        # Called holding the lock: parses what arrived since the last call, once.
        for raw in self._raw[len(self._parsed) :]:
            self._parsed.append(parse_message(raw))
        return list(self._parsed)

    def snapshot(self) -> list[EmailMessage]:
        with self._arrived:
            return self._parsed_so_far()

    def wait_for(self, count: int, timeout: float) -> list[EmailMessage]:
        with self._arrived:
            arrived = self._arrived.wait_for(lambda: len(self._raw) >= count, timeout)
            if not arrived:
                raise TimeoutError(
                    f"expected {count} message(s) within {timeout}s, but {len(self._raw)} arrived"
                )
            return self._parsed_so_far()


class _SinkHandler:
    """aiosmtpd handler: accept every message and hand it to the mailbox, except for the
    recipients it was told to refuse (550, a permanent refusal, as for an unknown user)."""

    def __init__(self, mailbox: _Mailbox, refuse: frozenset[str] = frozenset()) -> None:
        self._mailbox = mailbox
        self._refuse = refuse

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address.lower() in self._refuse:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    # aiosmtpd looks hooks up by this exact name.
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        raw = bytes(raw)
        sequence = self._mailbox.add(raw)
        if log.isEnabledFor(logging.INFO):
            headers = summary_headers(raw, ("To", "Subject", "Message-ID"))
            to, subject, message_id = headers["To"], headers["Subject"], headers["Message-ID"]
            log.info(
                "mail #%d to=%s subject=%s message-id=%s",
                sequence,
                ", ".join(envelope.rcpt_tos) if to is None else to,
                subject or "",
                message_id or "",
            )
        return "250 Message accepted for delivery"


class MailSink(Served):
    """An SMTP server on ``host:port`` (0 picks a free port) that keeps every message."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 0,
        mail_dir: Path | None = None,
        *,
        refuse: frozenset[str] = frozenset(),
        keep: bool = True,
    ) -> None:
        """`keep` false (needs a `mail_dir`): messages are filed only, and `messages` and
        `wait_for` are not available — the standalone sink of the local stack."""
        if not keep and mail_dir is None:
            raise ValueError("a sink that keeps nothing in memory needs a mail_dir")
        self.keep = keep
        self.host = host
        self.refuse = frozenset(address.lower() for address in refuse)
        self._requested_port = port
        self.mail_dir = Path(mail_dir) if mail_dir is not None else None
        self._mailbox = _Mailbox(self.mail_dir, keep=keep)
        self._controller: Controller | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("MailSink is not started")
        return self._port

    @property
    def messages(self) -> list[EmailMessage]:
        """Messages received since this sink was created (a copy)."""
        self._must_keep()
        return self._mailbox.snapshot()

    def _must_keep(self) -> None:
        if not self.keep:
            raise RuntimeError("this sink files its mail only: read it with read_mailbox()")

    def start(self) -> MailSink:
        if self._controller is not None:
            raise RuntimeError("MailSink is already started")
        self._mailbox.prepare()
        port = self._requested_port or _free_port(self.host)
        controller = Controller(
            _SinkHandler(self._mailbox, self.refuse),
            hostname=self.host,
            port=port,
            ready_timeout=READY_TIMEOUT_SECONDS,
        )
        controller.start()
        self._controller, self._port = controller, port
        return self

    def stop(self) -> None:
        if self._controller is None:
            return
        self._controller.stop()
        self._controller = None

    def wait_for(self, count: int, timeout: float) -> list[EmailMessage]:
        """Block until ``count`` messages arrived; raise TimeoutError saying how many did."""
        self._must_keep()
        return self._mailbox.wait_for(count, timeout)


def _config_from_env() -> tuple[str, int, Path]:
    host = host_from_env("SANDBOX_SMTP_HOST")
    port = port_from_env("SANDBOX_SMTP_PORT", DEFAULT_PORT)
    return host, port, data_dir_from_env() / "mail"


def _wait_for_signal() -> None:
    stop = threading.Event()

    def _request_stop(signum: int, _: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    # A bounded wait lets the main thread run the signal handler promptly on every platform.
    while not stop.wait(timeout=0.5):
        pass


def main() -> None:
    """Run the sink as configured by SANDBOX_SMTP_HOST/PORT and SANDBOX_DATA_DIR until signalled."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # aiosmtpd logs every SMTP verb at INFO; one line per message is what operators want.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    try:
        host, port, mail_dir = _config_from_env()
    except ValueError as exc:
        print(f"sandbox mailsink: {exc}", file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from None
    with MailSink(host, port, mail_dir, keep=False) as sink:
        log.info("listening on %s:%d, filing mail in %s", host, sink.port, mail_dir)
        _wait_for_signal()


if __name__ == "__main__":
    main()
