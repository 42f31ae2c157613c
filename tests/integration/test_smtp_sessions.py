"""The notify mailer keeps SMTP sessions open between e-mails, and never sends one twice."""

from __future__ import annotations

import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from sandbox.mailsink import MailSink, read_mailbox
from services.notify.messages.mailer import SmtpMailer, is_transient, new_message

WAIT = 5.0


class Recorder:
    """An aiosmtpd handler that remembers, per message, the session that brought it, and can
    be told to answer the next MAIL FROM or the end of DATA with a given reply."""

    def __init__(self) -> None:
        self.received: list[tuple[int, str]] = []  # (session, Message-ID)
        self.quits = 0
        self.sessions: set[int] = set()
        self.mail_reply: str | None = None
        self.data_reply: str | None = None
        self.lock = threading.Lock()

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        with self.lock:
            self.sessions.add(id(session))
            reply, self.mail_reply = self.mail_reply, None
        if reply is not None:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = next(
            line.split(":", 1)[1].strip()
            for line in envelope.content.decode().splitlines()
            if line.lower().startswith("message-id:")
        )
        with self.lock:
            self.received.append((id(session), message_id))
            reply, self.data_reply = self.data_reply, None
        return reply or "250 Message accepted for delivery"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.quits += 1
        return "221 Bye"

    def ids(self) -> list[str]:
        with self.lock:
            return [message_id for _, message_id in self.received]


@pytest.fixture
def server() -> Iterator[tuple[Recorder, Controller]]:
    recorder = Recorder()
    with socket.socket() as probe:  # the controller needs a concrete port to check it is up
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield recorder, controller
    finally:
        controller.stop()


def port_of(controller: Controller) -> int:
    port: int = controller.port
    return port


def mail(n: int) -> EmailMessage:
    message = new_message()
    message["From"] = "refunds@localhost"
    message["To"] = "li.wei@example.com"
    message["Subject"] = f"message {n}"
    message["Message-ID"] = f"<m{n}@refunds.test>"
    message.set_content(f"body {n}")
    return message


def until(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_one_session_serves_several_emails(server: tuple[Recorder, Controller]) -> None:
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost")
    try:
        for n in range(5):
            mailer.send(mail(n))
        assert recorder.ids() == [f"<m{n}@refunds.test>" for n in range(5)]
        assert len(recorder.sessions) == 1 and mailer.sessions_opened == 1
    finally:
        mailer.close()
    until(lambda: recorder.quits == 1, "QUIT on close")


def test_concurrent_senders_never_share_a_session(server: tuple[Recorder, Controller]) -> None:
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost")
    threads = [threading.Thread(target=mailer.send, args=(mail(n),)) for n in range(6)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(WAIT)
        assert sorted(recorder.ids()) == sorted(f"<m{n}@refunds.test>" for n in range(6))
        assert mailer.idle_sessions == mailer.sessions_opened <= 6
    finally:
        mailer.close()
    assert mailer.idle_sessions == 0


def test_a_session_idle_too_long_is_closed(server: tuple[Recorder, Controller]) -> None:
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost", idle_seconds=0.2)
    mailer.send(mail(1))
    until(lambda: recorder.quits == 1 and mailer.idle_sessions == 0, "the idle session closed")
    mailer.send(mail(2))  # a new session, and the idle closer starts again
    until(lambda: recorder.quits == 2, "the second idle session closed")
    assert mailer.sessions_opened == 2
    assert recorder.ids() == ["<m1@refunds.test>", "<m2@refunds.test>"]
    mailer.close()


def test_a_dropped_session_is_replaced_without_a_second_copy(tmp_path: Any) -> None:
    mail_dir = tmp_path / "mail"
    with MailSink(mail_dir=mail_dir) as sink:
        port = sink.port
        mailer = SmtpMailer(sink.host, port, "refunds@localhost")
        mailer.send(mail(1))
        sink.wait_for(1, WAIT)
    # The sink went away (its sessions with it) and came back on the same port.
    with MailSink(port=port, mail_dir=mail_dir) as sink:
        try:
            mailer.send(mail(2))
            mailer.send(mail(3))
            sink.wait_for(2, WAIT)
            time.sleep(0.2)
            assert [str(m["Message-ID"]) for m in sink.messages] == [
                "<m2@refunds.test>",
                "<m3@refunds.test>",
            ]
        finally:
            mailer.close()
    assert [str(m["Message-ID"]) for m in read_mailbox(mail_dir)] == [
        f"<m{n}@refunds.test>" for n in (1, 2, 3)
    ]
    assert mailer.sessions_opened == 2


def test_a_421_before_data_is_retried_on_a_new_session(
    server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost")
    try:
        mailer.send(mail(1))
        recorder.mail_reply = "421 4.3.2 Service shutting down"
        mailer.send(mail(2))
        assert recorder.ids() == ["<m1@refunds.test>", "<m2@refunds.test>"]
        assert mailer.sessions_opened == 2
    finally:
        mailer.close()


def test_an_error_after_data_is_never_resent_here(server: tuple[Recorder, Controller]) -> None:
    """Once DATA went out the server may hold the message: the error goes to the sender (whose
    retry rules decide), with no copy sent by the mailer itself — even on a reused session."""
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost")
    try:
        mailer.send(mail(1))
        recorder.data_reply = "421 4.3.2 Closing after all"
        with pytest.raises(smtplib.SMTPDataError) as raised:
            mailer.send(mail(2))
        assert is_transient(raised.value)
        assert recorder.ids() == ["<m1@refunds.test>", "<m2@refunds.test>"]
        assert mailer.sessions_opened == 1 and mailer.idle_sessions == 0
        mailer.send(mail(3))  # a fresh session afterwards
        assert mailer.sessions_opened == 2
    finally:
        mailer.close()


def test_a_refusal_on_a_fresh_session_is_not_retried(server: tuple[Recorder, Controller]) -> None:
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost")
    recorder.mail_reply = "421 4.3.2 Not now"
    with pytest.raises(smtplib.SMTPSenderRefused):
        mailer.send(mail(1))
    assert recorder.ids() == [] and mailer.sessions_opened == 1
    mailer.close()


def test_after_close_each_email_has_a_session_of_its_own(
    server: tuple[Recorder, Controller],
) -> None:
    recorder, controller = server
    mailer = SmtpMailer("127.0.0.1", port_of(controller), "refunds@localhost")
    mailer.close()
    mailer.send(mail(1))
    assert mailer.idle_sessions == 0
    until(lambda: recorder.quits == 1, "QUIT right after the message")
