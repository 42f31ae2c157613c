"""Integration tests for the SMTP mail sink, fed by a real smtplib client."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest

from sandbox.mailsink import MailSink, read_mailbox

WAIT_SECONDS = 5.0


def compose(to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "refunds@shop.example"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="shop.example")
    message.set_content(body)
    return message


def send(sink: MailSink, *messages: EmailMessage) -> None:
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=WAIT_SECONDS) as client:
        for message in messages:
            client.send_message(message)


def test_sink_keeps_and_files_every_message(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    with MailSink(mail_dir=mail_dir) as sink:
        assert sink.port > 0
        send(
            sink,
            compose("alice@example.com", "Refund approved", "Your refund of 12.50 is on its way."),
            compose("王伟 <wei@example.cn>", "退款已到账", "您的退款 ¥12.50 已原路退回。"),
        )
        received = sink.wait_for(2, timeout=WAIT_SECONDS)

    assert [m["Subject"] for m in received] == ["Refund approved", "退款已到账"]
    assert [m["To"].addresses[0].addr_spec for m in received] == [
        "alice@example.com",
        "wei@example.cn",
    ]
    assert received[1]["To"].addresses[0].display_name == "王伟"
    body = received[1].get_body(preferencelist=("plain",))
    assert body is not None
    assert body.get_content().strip() == "您的退款 ¥12.50 已原路退回。"
    assert sorted(path.name for path in mail_dir.glob("*.eml")) == ["000001.eml", "000002.eml"]
    filed = read_mailbox(mail_dir)
    assert [m["Subject"] for m in filed] == ["Refund approved", "退款已到账"]
    assert [m["Message-ID"] for m in filed] == [m["Message-ID"] for m in received]


def test_sequence_continues_after_a_restart(tmp_path: Path) -> None:
    mail_dir = tmp_path / "mail"
    with MailSink(mail_dir=mail_dir) as sink:
        send(sink, compose("a@example.com", "first", "one"))
        sink.wait_for(1, timeout=WAIT_SECONDS)

    with MailSink(mail_dir=mail_dir) as sink:
        send(sink, compose("b@example.com", "second", "two"))
        assert [m["Subject"] for m in sink.wait_for(1, timeout=WAIT_SECONDS)] == ["second"]

    assert sorted(path.name for path in mail_dir.glob("*.eml")) == ["000001.eml", "000002.eml"]
    assert [m["Subject"] for m in read_mailbox(mail_dir)] == ["first", "second"]


def test_wait_for_names_how_many_arrived() -> None:
    with MailSink() as sink:
        send(sink, compose("a@example.com", "only one", "one"))
        sink.wait_for(1, timeout=WAIT_SECONDS)

        with pytest.raises(TimeoutError, match="1 arrived"):
            sink.wait_for(2, timeout=0.2)

    assert len(sink.messages) == 1


def test_a_filing_sink_keeps_nothing_in_memory(tmp_path: Path) -> None:
    """The local stack's sink files each message and holds none: it runs for weeks."""
    mail_dir = tmp_path / "mail"
    with MailSink(mail_dir=mail_dir, keep=False) as sink:
        send(sink, compose("a@example.com", "first", "one"), compose("b@example.com", "2nd", "two"))
        with pytest.raises(RuntimeError, match="read_mailbox"):
            sink.wait_for(1, timeout=0.1)
        with pytest.raises(RuntimeError, match="read_mailbox"):
            _ = sink.messages
        assert sink._mailbox._raw == []

    assert [m["Subject"] for m in read_mailbox(mail_dir)] == ["first", "2nd"]
    with pytest.raises(ValueError, match="mail_dir"):
        MailSink(keep=False)
