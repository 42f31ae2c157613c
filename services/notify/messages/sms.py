"""SMS provider adapter: send one text message over the provider's HTTP API, exactly once per
idempotency key; plus how long a text is in SMS segments and how to show a phone number."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

import httpx

IDEMPOTENCY_HEADER = "Idempotency-Key"
# 408 timeout, 425 too early, 429 rate limited: the provider asks us to come back later.
_TRANSIENT_4XX = frozenset({408, 425, 429})
_CONFLICT = 409

# GSM 03.38: the 7-bit default alphabet, and the extension table whose characters take an
# escape plus the character, i.e. two of the 160 places.
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
# Places per single message, and per part once a text is split (the rest holds the UDH).
_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


class SmsRejected(Exception):
    """The provider refused this message for good (bad number, content, credentials): a
    4xx other than 408, 425 and 429. Sending it again cannot succeed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SmsConflict(SmsRejected):
    """409: the idempotency key was already used for a *different* message. The provider
    sent that one; this text cannot go out under this key, so retrying cannot help."""


class SmsUnavailable(Exception):
    """The provider could not be reached or asked us to come back later (network error,
    timeout, 5xx, 408, 425, 429). Retry with the same idempotency key."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after  # seconds, when the provider sent Retry-After


@dataclass(frozen=True)
class SmsLength:
    encoding: Literal["GSM-7", "UCS-2"]
    units: int  # places taken: GSM extension characters count 2, UCS-2 counts UTF-16 units
    segments: int  # messages the network carries (and bills)


def measure(text: str) -> SmsLength:
    """How ``text`` travels: GSM-7 when every character is in the GSM alphabet, else UCS-2."""
    if all(char in _GSM_BASIC or char in _GSM_EXTENSION for char in text):
        encoding: Literal["GSM-7", "UCS-2"] = "GSM-7"
        units = len(text) + sum(char in _GSM_EXTENSION for char in text)
    else:
        encoding = "UCS-2"
        units = len(text.encode("utf-16-le")) // 2
    single, part = _LIMITS[encoding]
    segments = 0 if units == 0 else 1 if units <= single else math.ceil(units / part)
    return SmsLength(encoding, units, segments)


def mask_phone(phone: str) -> str:
    """``+8613812345678`` → ``+86 138****5678``: enough to recognise the number, never fewer
    than four digits hidden, so not enough to call it."""
    digits = "".join(char for char in phone if char.isdigit())
    if not digits:
        return "***"
    country = ""
    if phone.strip().startswith("+"):
        length = _country_code_length(digits)
        country, digits = "+" + digits[:length] + " ", digits[length:]
    hidden = 4
    prefix = min(3, max(0, len(digits) - hidden - 4))
    suffix = min(4, max(0, len(digits) - hidden - prefix))
    return country + digits[:prefix] + "*" * hidden + digits[len(digits) - suffix :]


def _country_code_length(digits: str) -> int:
    # ITU-T E.164 codes: zones 1 and 7 are one digit; these two-digit codes are assigned
    # whole; every other code has three digits.
    if digits[0] in "17":
        return 1
    two = {"20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45"}
    two |= {"46", "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61"}
    two |= {"62", "63", "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94"}
    two |= {"95", "98"}
    return 2 if digits[:2] in two else 3


class HttpSmsProvider:
    """A provider speaking `POST /v1/messages` (the sandbox's API, sandbox/SMS.md)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,  # tests: answers without a network
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def send(self, to: str, text: str, *, idempotency_key: str) -> str:
        """Send ``text`` to ``to`` (E.164); the provider's message id. The same key never
        makes a second SMS: a repeat returns the first message's id."""
        try:
            response = self._client.post(
                "/v1/messages",
                json={"to": to, "text": text},
                headers={IDEMPOTENCY_HEADER: idempotency_key},
            )
        except httpx.HTTPError as error:  # connection refused, reset, timeout, ...
            raise SmsUnavailable(f"SMS provider unreachable: {error!r}") from error
        return _message_id(response)

    def close(self) -> None:
        self._client.close()


def _message_id(response: httpx.Response) -> str:
    status = response.status_code
    if status in (200, 201):
        try:
            message_id = response.json()["id"]
        except (ValueError, KeyError, TypeError) as error:
            # Accepted or not, a retry under the same key is safe and gets a readable answer.
            raise SmsUnavailable(
                "SMS provider answered without a message id", status=status
            ) from error
        return str(message_id)
    detail = f"SMS provider answered {status}: {response.text[:200]}"
    if status >= 500 or status in _TRANSIENT_4XX:
        retry_after = _retry_after(response.headers.get("Retry-After"))
        raise SmsUnavailable(detail, status=status, retry_after=retry_after)
    if status == _CONFLICT:
        raise SmsConflict(detail, status=status)
    if 400 <= status < 500:
        raise SmsRejected(detail, status=status)
    raise SmsUnavailable(detail, status=status)  # 1xx/3xx: not this API's answers


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
