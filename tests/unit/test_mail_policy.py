"""E-mails composed with the cached header classes are the e-mails the standard policy makes."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import default

from services.notify.messages.mailer import POLICY, new_message


def _compose(message: EmailMessage) -> bytes:
    message["From"] = "Refunds <refunds@example.com>"
    message["To"] = "li.wei@example.com"
    message["Subject"] = "退款已到账 — your refund was paid"
    message["Date"] = "Sun, 22 Nov 2026 05:33:25 +0000"
    message["Message-ID"] = "<nt_1@refunds.local>"
    message["X-Refund-Id"] = "rf_1"
    message.set_content("Plain text, with ¥129.00.\n", charset="utf-8")
    message.add_alternative("<p>HTML &amp; more</p>\n", subtype="html", charset="utf-8")
    message["Content-Language"] = "zh-CN"
    message.set_boundary("BOUNDARY")
    return message.as_bytes()


def test_same_bytes_as_the_standard_policy() -> None:
    assert _compose(new_message()) == _compose(EmailMessage(policy=default))


def test_header_classes_are_built_once_and_behave_the_same() -> None:
    first, second = new_message(), new_message()
    for message in (first, second):
        message["To"] = "a@example.com, b@example.com"
        message["Subject"] = "hello"
    assert type(first["To"]) is type(second["To"])
    assert [a.addr_spec for a in first["To"].addresses] == ["a@example.com", "b@example.com"]
    assert type(first["To"]) is not type(first["Subject"])
    assert POLICY.header_factory["to"] is POLICY.header_factory["To"]
