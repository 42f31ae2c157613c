"""The mail sink logs each message from its raw headers, without parsing the message."""

from __future__ import annotations

from email.message import EmailMessage

from sandbox.mailsink import parse_message, summary_headers


def test_summary_headers_decode_like_the_full_parse() -> None:
    message = EmailMessage()
    message["From"] = "refunds@shop.example"
    message["To"] = "王伟 <wei@example.cn>"
    message["Subject"] = "退款已到账 — " + "a rather long subject that has to be folded " * 3
    message["Message-ID"] = "<m1@shop.example>"
    message.set_content("您的退款 ¥12.50 已原路退回。")
    raw = message.as_bytes()
    assert b"=?utf-8?" in raw  # the headers travel encoded (and folded)

    found = summary_headers(raw, ("To", "Subject", "Message-ID", "Cc"))

    parsed = parse_message(raw)
    assert found == {
        "To": str(parsed["To"]),
        "Subject": str(parsed["Subject"]),
        "Message-ID": "<m1@shop.example>",
        "Cc": None,
    }
    assert found["To"] == "王伟 <wei@example.cn>"


def test_an_undecodable_header_is_logged_as_it_came() -> None:
    raw = b"To: a@example.com\r\nSubject: =?nonsense-charset?q?x?=\r\n\r\nbody\r\n"
    assert summary_headers(raw, ("Subject",)) == {"Subject": "=?nonsense-charset?q?x?="}


def test_only_the_header_block_is_read() -> None:
    """The body is not parsed, so a line in it that looks like a header is not one."""
    crlf = b"To: a@example.com\r\n\r\nSubject: in the body\r\n"
    lf = b"To: a@example.com\nSubject: real\n\nSubject: in the body\n"
    assert summary_headers(crlf, ("To", "Subject")) == {"To": "a@example.com", "Subject": None}
    assert summary_headers(lf, ("Subject",)) == {"Subject": "real"}
    assert summary_headers(b"To: a@example.com", ("To",)) == {"To": "a@example.com"}
