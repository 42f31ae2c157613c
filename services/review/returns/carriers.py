"""The carrier adapter: subscribe to a return shipment, hear its pushes, query its trail.

`Carrier` is the interface the return lifecycle uses; `Kuaidi100` implements it over
Kuaidi100's (快递100) subscription, push and real-time query protocol (sandbox/CARRIER.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from services.review.returns.trail import (
    PUSH_STATUSES,
    MalformedTrail,
    PushStatus,
    Trail,
    trail_from_kuaidi100,
)
from shared.vocabulary import normalize_tracking_number, tracking_number_problem

SUBSCRIBE_PATH = "/poll"
QUERY_PATH = "/poll/query.do"
# What a push's receiver answers: Kuaidi100 retries a push until it hears `accepted`.
PUSH_ACCEPTED: dict[str, Any] = {"result": True, "returnCode": "200", "message": "成功"}
PUSH_REFUSED: dict[str, Any] = {"result": False, "returnCode": "500", "message": "失败"}
# Subscription answers: 501 (重复订阅) means we are already subscribed, which is what we want.
_SUBSCRIBED = frozenset({"200", "501"})
_SUBSCRIBE_TRANSIENT = frozenset({"500"})  # 服务器错误
# Query answers without a trail: 500 has no event yet; 501/502 are the server's trouble.
_QUERY_NO_RESULT = "500"
_QUERY_TRANSIENT = frozenset({"501", "502"})


class CarrierError(Exception):
    """The carrier could not do what was asked."""


class TransientCarrierError(CarrierError):
    """Worth asking again later: timeouts, 5xx, 429, the carrier's own server trouble."""


class PermanentCarrierError(CarrierError):
    """Asking again cannot help: our credentials, a bad number or a refused subscription."""


class RejectedPush(Exception):
    """A push we must not trust or cannot read; the receiver answers PUSH_REFUSED."""


class BadPushSignature(RejectedPush):
    """A push whose `sign` is missing or is not MD5(param + our salt)."""


class MalformedPush(RejectedPush):
    """A push whose body is not the documented form (`param` JSON with a `lastResult`)."""


class Carrier(Protocol):
    """What the return lifecycle needs from a parcel-tracking provider."""

    async def subscribe(self, code: str, number: str, callback_url: str) -> None:
        """Have every change of the shipment pushed to `callback_url`."""
        ...

    async def query(self, code: str, number: str) -> Trail:
        """The shipment's trail as the carrier knows it now."""
        ...

    def parse_push(self, form: Mapping[str, str]) -> Trail:
        """The trail a push carries, once its signature is verified."""
        ...


def md5_upper(text: str) -> str:
    """Kuaidi100's signature primitive: the upper-case hex MD5 of the UTF-8 text."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest().upper()


def signs(expected: str, given: str | None) -> bool:
    """Whether `given` is the hex digest `expected` (case-blind), compared in constant time."""
    if not given:
        return False
    return hmac.compare_digest(expected.encode(), given.strip().upper().encode())


class Kuaidi100:
    """HTTP adapter for Kuaidi100 (the real one at https://poll.kuaidi100.com, or the sandbox).

    `key` authorizes subscriptions and signs queries with `customer`; `salt` is ours: the
    carrier signs every push with it, so a push without the right `sign` is refused.
    """

    def __init__(
        self,
        base_url: str,
        *,
        key: str,
        customer: str,
        salt: str,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not salt:
            raise ValueError("a push salt is required: unsigned pushes cannot be trusted")
        self._key, self._customer, self._salt = key, customer, salt
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)

    async def subscribe(self, code: str, number: str, callback_url: str) -> None:
        number = _checked(code, number)
        param = {
            "company": code,
            "number": number,
            "key": self._key,
            "parameters": {"callbackurl": callback_url, "salt": self._salt},
        }
        answer = await self._post(
            SUBSCRIBE_PATH, {"schema": "json", "param": json.dumps(param, ensure_ascii=False)}
        )
        returned = str(answer.get("returnCode", ""))
        if answer.get("result") is True or returned in _SUBSCRIBED:
            return
        cause = f"subscription of {code}/{number} refused: {returned} {answer.get('message', '')}"
        if returned in _SUBSCRIBE_TRANSIENT:
            raise TransientCarrierError(cause)
        raise PermanentCarrierError(cause)

    async def query(self, code: str, number: str) -> Trail:
        number = _checked(code, number)
        param = json.dumps({"com": code, "num": number}, ensure_ascii=False)
        sign = md5_upper(param + self._key + self._customer)
        answer = await self._post(
            QUERY_PATH, {"customer": self._customer, "sign": sign, "param": param}
        )
        if "data" not in answer:  # no trail: {"result": false, "returnCode", "message"}
            returned = str(answer.get("returnCode", ""))
            if returned == _QUERY_NO_RESULT:
                return Trail(carrier=code, number=number, state="pending")
            cause = f"query of {code}/{number} refused: {returned} {answer.get('message', '')}"
            if returned in _QUERY_TRANSIENT:
                raise TransientCarrierError(cause)
            raise PermanentCarrierError(cause)
        try:
            trail = trail_from_kuaidi100(answer)
        except MalformedTrail as error:
            raise PermanentCarrierError(f"unusable query answer: {error}") from error
        if (trail.carrier, trail.number) != (code, number):
            raise PermanentCarrierError(
                f"asked for {code}/{number}, got {trail.carrier}/{trail.number}"
            )
        return trail

    def parse_push(self, form: Mapping[str, str]) -> Trail:
        param = form.get("param")
        if not isinstance(param, str) or not param:
            raise MalformedPush("a push needs a `param` field")
        # The sign covers the exact text received: verify before parsing anything.
        if not signs(md5_upper(param + self._salt), form.get("sign")):
            raise BadPushSignature("the push's sign is missing or does not match our salt")
        try:
            body = json.loads(param)
        except ValueError as error:
            raise MalformedPush(f"`param` is not JSON: {error}") from error
        if not isinstance(body, dict):
            raise MalformedPush("`param` must be a JSON object")
        status = body.get("status")
        if status not in PUSH_STATUSES:
            raise MalformedPush(f"unknown push status {status!r}")
        push_status: PushStatus = status
        try:
            return trail_from_kuaidi100(body.get("lastResult"), push_status)
        except MalformedTrail as error:
            raise MalformedPush(f"`lastResult`: {error}") from error

    async def close(self) -> None:
        await self._client.aclose()

    async def _post(self, path: str, form: dict[str, str]) -> dict[str, Any]:
        """POST a form; the JSON object answered, or the error it amounts to."""
        try:
            response = await self._client.post(path, data=form)
        except httpx.TransportError as error:  # includes timeouts
            raise TransientCarrierError(f"carrier unreachable: {type(error).__name__}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientCarrierError(f"carrier answered {response.status_code}")
        if response.status_code != 200:
            raise PermanentCarrierError(
                f"carrier refused: {response.status_code} {response.text[:200]}"
            )
        try:
            answer = response.json()
        except ValueError as error:
            cause = f"carrier answered no JSON: {response.text[:200]}"
            raise PermanentCarrierError(cause) from error
        if not isinstance(answer, dict):
            raise PermanentCarrierError("carrier answered JSON that is no object")
        return answer


def _checked(code: str, number: str) -> str:
    """The number as carriers print it; PermanentCarrierError when it fits no rule of ours."""
    problem = tracking_number_problem(code, number)
    if problem is not None:
        raise PermanentCarrierError(problem)
    return normalize_tracking_number(number)
