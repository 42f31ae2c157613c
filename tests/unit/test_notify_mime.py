"""Customer e-mails written straight to bytes read back as the email package's own would: the
same headers, the same parts, the same texts; what does not fit the simple form is left to
the email package."""

from __future__ import annotations

import timeit
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default

import pytest

from services.notify.messages.channels import EmailChannel
from services.notify.messages.domain import Due
from services.notify.messages.formatting import LOCALES
from services.notify.messages.mime import WrittenEmail
from services.notify.messages.steps import STEPS
from services.notify.messages.templates import SAMPLE_FACTS, SAMPLE_REFERENCE, render

CHANNEL = EmailChannel(mailer=None, mail_from="Refunds 退款 <refunds@shop.example>")  # type: ignore[arg-type]
HEADERS = ("From", "To", "Subject", "Message-ID", "X-Refund-Id", "X-Notification-Id")


def due(step: str, locale: str, address: str = "li.wei@example.com") -> Due:
    return Due(step, "email", SAMPLE_FACTS[step], address, locale, 0, None)


def parsed(content: EmailMessage | WrittenEmail | str) -> EmailMessage:
    data = content.data if isinstance(content, WrittenEmail) else content.as_bytes()  # type: ignore[union-attr]
    message = message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def texts(message: EmailMessage) -> list[tuple[str, str]]:
    parts = message.iter_parts() if message.is_multipart() else iter([message])
    return [(part.get_content_type(), str(part.get_content())) for part in parts]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("step", STEPS)
def test_a_written_email_reads_back_as_the_email_package_writes_it(step: str, locale: str) -> None:
    outgoing = CHANNEL.compose(SAMPLE_REFERENCE, due(step, locale))
    assert isinstance(outgoing.content, WrittenEmail)
    ours = parsed(outgoing.content)
    rendering_headers = {
        "Message-ID": str(ours["Message-ID"]),
        "X-Refund-Id": SAMPLE_REFERENCE,
        "X-Notification-Id": str(ours["X-Notification-Id"]),
    }
    rendering = render(step, locale, SAMPLE_FACTS[step], reference=SAMPLE_REFERENCE)
    theirs = parsed(CHANNEL._message("li.wei@example.com", rendering, rendering_headers))

    assert {h: str(ours[h]) for h in HEADERS} == {h: str(theirs[h]) for h in HEADERS}
    assert ours["Content-Language"] == theirs["Content-Language"] == rendering.locale
    assert ours.get_content_type() == theirs.get_content_type()
    assert texts(ours) == texts(theirs)
    assert outgoing.content.message_id == str(ours["Message-ID"])


@pytest.mark.parametrize("locale", LOCALES)
def test_a_long_subject_is_folded_and_reads_back_whole(locale: str) -> None:
    order = "ORD " + "9 " * 60 + "9"
    facts = dict(SAMPLE_FACTS["rejected"], order_id=order)
    outgoing = CHANNEL.compose(
        SAMPLE_REFERENCE, Due("rejected", "email", facts, "a@b.example", locale, 0, None)
    )
    assert isinstance(outgoing.content, WrittenEmail)
    lines = outgoing.content.data.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines)
    assert order in str(parsed(outgoing.content)["Subject"])


@pytest.mark.parametrize(
    "address", ["王伟 <wei@example.cn>", "wei@例子.cn", "a@b.example\r\nBcc: x@evil.example"]
)
def test_an_address_beyond_a_plain_ascii_one_is_left_to_the_email_package(address: str) -> None:
    if "\n" in address:
        with pytest.raises(ValueError):  # the email package refuses a header injection
            CHANNEL.compose(SAMPLE_REFERENCE, due("paid", "en", address))
        return
    outgoing = CHANNEL.compose(SAMPLE_REFERENCE, due("paid", "en", address))
    assert isinstance(outgoing.content, EmailMessage)
    assert str(parsed(outgoing.content)["To"]) == address


def test_writing_is_several_times_cheaper_than_building_and_flattening() -> None:
    rendering = render("approved", "zh-CN", SAMPLE_FACTS["approved"], reference=SAMPLE_REFERENCE)
    headers = {"Message-ID": "<m@x>", "X-Refund-Id": "r", "X-Notification-Id": "n"}
    d = due("approved", "zh-CN")
    written = min(timeit.repeat(lambda: CHANNEL.compose(SAMPLE_REFERENCE, d), number=50, repeat=5))
    built = min(
        timeit.repeat(
            lambda: CHANNEL._message(d.address, rendering, headers).as_bytes(), number=50, repeat=5
        )
    )
    assert written * 3 < built, (written, built)
