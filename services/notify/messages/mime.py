"""Customer e-mails written straight to their wire form (the bytes SMTP's DATA carries).

Building an `EmailMessage` and flattening it cost about a millisecond per e-mail, nearly all
of it in the email package's header parsing and folding and in choosing a transfer encoding,
for a structure that is the same in every customer e-mail: the headers below, then either
one text/plain part or multipart/alternative with text/plain first and text/html second,
each UTF-8 in base64. So that structure is written here directly; what only depends on the
channel (the From line) is written once. A message that does not fit the simple form — an
address that is not a plain ASCII addr-spec, a subject with a line break — is left to the
email package (`written` answers None), which checks and encodes it as before.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.header import Header
from email.policy import default
from email.utils import format_datetime

CRLF = "\r\n"
# A plain addr-spec (RFC 5322 dot-atom local part, ASCII domain): nothing to quote or encode.
_PLAIN_ADDRESS = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+$")
_WIRE = default.clone(linesep=CRLF)


@dataclass(frozen=True)
class WrittenEmail:
    """An e-mail in its wire form, with the envelope recipient and its Message-ID."""

    to: str
    message_id: str
    data: bytes


def from_line(mail_from: str) -> str:
    """The From header as the email package writes it (once per channel, not per e-mail)."""
    return _WIRE.header_factory("From", mail_from).fold(policy=_WIRE)


def written(
    *,
    from_header: str,
    to: str,
    subject: str,
    headers: dict[str, str],
    locale: str,
    text: str,
    html: str | None,
) -> WrittenEmail | None:
    """The e-mail's bytes; None when it needs the email package (see the module docstring).
    `headers` are ours (ids), written as they are."""
    if not _PLAIN_ADDRESS.match(to) or "\r" in subject or "\n" in subject:
        return None
    charset = "us-ascii" if subject.isascii() else "utf-8"
    lines = [
        from_header.rstrip(CRLF),
        f"To: {to}",
        "Subject: " + Header(subject, charset, header_name="Subject").encode(linesep=CRLF),
        f"Date: {format_datetime(datetime.now(UTC))}",
        *(f"{name}: {value}" for name, value in headers.items()),
        "MIME-Version: 1.0",
    ]
    if html is None:
        lines += [*_part_headers("plain"), f"Content-Language: {locale}", "", _body(text)]
    else:
        # Base64 lines never hold "-" or "_", so the boundary cannot occur in a part.
        boundary = f"=_refunds_{secrets.token_hex(8)}"
        lines += [
            f'Content-Type: multipart/alternative; boundary="{boundary}"',
            f"Content-Language: {locale}",
            "",
            f"--{boundary}",
            *_part_headers("plain"),
            "",
            _body(text),
            f"--{boundary}",
            *_part_headers("html"),
            "",
            _body(html),
            f"--{boundary}--",
            "",
        ]
    message_id = headers["Message-ID"]
    return WrittenEmail(to, message_id, CRLF.join(lines).encode("ascii"))


def _part_headers(subtype: str) -> list[str]:
    return [f'Content-Type: text/{subtype}; charset="utf-8"', "Content-Transfer-Encoding: base64"]


def _body(text: str) -> str:
    """The text in base64, its lines ending as the email package ends them (one newline
    each, the last one too), in lines of 76 characters."""
    data = ("\n".join(text.splitlines()) + "\n").encode("utf-8")
    return base64.encodebytes(data).decode("ascii").replace("\n", CRLF).rstrip(CRLF)
