"""Notify's configuration (environment variables, validated at start-up)."""

from __future__ import annotations

import re
from email.utils import parseaddr

from pydantic import Field, field_validator

from shared.settings import ServiceSettings

ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+$")


class NotifySettings(ServiceSettings):
    port: int = Field(8004, ge=1, le=65535)
    smtp_host: str = Field("127.0.0.1", min_length=1, description="SMTP server for e-mail")
    smtp_port: int = Field(8025, ge=1, le=65535, description="SMTP port (the dev sink: 8025)")
    mail_from: str = Field(
        "refunds@localhost",
        description="From of customer e-mail: addr@domain or `Name <addr@domain>`",
    )
    sender_enabled: bool = Field(True, description="run the e-mail sender in this process")

    @field_validator("mail_from")
    @classmethod
    def _is_address(cls, value: str) -> str:
        value = value.strip()
        name, address = parseaddr(value)
        # parseaddr is lenient: it returns something for any text, so check the
        # address part and that nothing but a display name was around it.
        bare = not name and value == address
        named = bool(name) and value.endswith(f"<{address}>")
        if not ADDRESS.match(address) or not (bare or named):
            raise ValueError(f"expected addr@domain or `Name <addr@domain>`, got {value!r}")
        return value

    @property
    def envelope_from(self) -> str:
        """The bare address for SMTP `MAIL FROM`."""
        return parseaddr(self.mail_from)[1]
