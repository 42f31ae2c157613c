"""SMS provider adapter: send one text message over the provider's HTTP API, exactly once per
idempotency key; plus how long a text is in SMS segments and how to show a phone number."""

from __future__ import annotations

import http.client
import json
import math
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

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


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes
    retry_after: str | None  # the Retry-After header, as sent


class _KeptAlive:
    """One kept-alive HTTP/1.1 connection (http.client): httpx's request machinery cost
    about twice the CPU per message (1.1 vs 0.5 ms against the sandbox). A reused connection
    the provider closed while idle is retried once on a new one: the idempotency key makes
    a repeat harmless. Any other failure closes it; the next message opens a new one."""

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._connection = kind(parts.hostname or "", parts.port, timeout=timeout)
        self._prefix = parts.path.rstrip("/")
        self._headers = headers
        self._used = False  # a response came on the open connection: it may be stale now
        self._lock = threading.Lock()  # http.client connections are not thread-safe

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> _Answer:
        with self._lock:
            try:
                if self._used:
                    try:
                        return self._exchange(path, body, headers)
                    except (ConnectionResetError, BrokenPipeError, http.client.BadStatusLine):
                        self._connection.close()  # closed by the provider while idle: once more
                return self._exchange(path, body, headers)
            except BaseException:
                self._connection.close()
                self._used = False
                raise

    def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> _Answer:
        self._used = False
        self._connection.request("POST", self._prefix + path, body, {**self._headers, **headers})
        response = self._connection.getresponse()
        answer = _Answer(response.status, response.read(), response.getheader("Retry-After"))
        self._used = True
        return answer

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class _ViaHttpx:
    """The same exchange through httpx, for tests that answer without a network."""

    def __init__(
        self, base_url: str, headers: dict[str, str], timeout: float, transport: Any
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> _Answer:
        response = self._client.post(path, content=body, headers=headers)
        return _Answer(response.status_code, response.content, response.headers.get("Retry-After"))

    def close(self) -> None:
        self._client.close()


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
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http: _KeptAlive | _ViaHttpx = (
            _KeptAlive(base_url, headers, timeout)
            if transport is None
            else _ViaHttpx(base_url, headers, timeout, transport)
        )

    def send(self, to: str, text: str, *, idempotency_key: str) -> str:
        """Send ``text`` to ``to`` (E.164); the provider's message id. The same key never
        makes a second SMS: a repeat returns the first message's id."""
        body = json.dumps({"to": to, "text": text}, ensure_ascii=False, separators=(",", ":"))
        try:
            answer = self._http.post(
                "/v1/messages", body.encode(), {IDEMPOTENCY_HEADER: idempotency_key}
            )
        except (OSError, http.client.HTTPException, httpx.HTTPError) as error:
            # Connection refused, reset, timeout, a garbled answer, ...
            raise SmsUnavailable(f"SMS provider unreachable: {error!r}") from error
        return _message_id(answer)

    def close(self) -> None:
        self._http.close()


def _message_id(answer: _Answer) -> str:
    status = answer.status
    if status in (200, 201):
        try:
            message_id = json.loads(answer.body)["id"]
        except (ValueError, KeyError, TypeError) as error:
            # Accepted or not, a retry under the same key is safe and gets a readable answer.
            raise SmsUnavailable(
                "SMS provider answered without a message id", status=status
            ) from error
        return str(message_id)
    text = answer.body.decode("utf-8", errors="replace")
    detail = f"SMS provider answered {status}: {text[:200]}"
    if status >= 500 or status in _TRANSIENT_4XX:
        raise SmsUnavailable(detail, status=status, retry_after=_retry_after(answer.retry_after))
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
