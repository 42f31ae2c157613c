"""The WeChat Pay APIv3 route: refunds (`/v3/refund/domestic/refunds`) signed with the
merchant's key, every answer verified against WeChat Pay's key before we believe it.

Error policy: we act permanently only on what WeChat Pay verifiably said. An answer whose
signature does not hold (unsigned, unknown key, a `WECHATPAY/SIGNTEST/` probe) is treated
as no answer — transient, and the executor's query settles what happened — because a
forged refusal must not stop a refund and a forged success must not record one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.payout.providers.base import (
    PermanentProviderError,
    ProviderReceipt,
    RefundOrder,
    TransientProviderError,
)
from services.payout.providers.wechatpay import signing
from services.payout.providers.wechatpay.account import WeChatPayAccount

CURRENCY = "CNY"  # domestic refunds are in fen of CNY only
# WeChat Pay's own order number (transaction_id) is 28 digits (32 for some channels);
# a merchant's order number (out_trade_no) is 6-32 of [0-9A-Za-z_-|*].
_TRANSACTION_ID = re.compile(r"^[0-9]{28}$|^[0-9]{32}$")
_OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
REFUND_STATUSES = {
    "SUCCESS": "success",
    "PROCESSING": "processing",
    "ABNORMAL": "abnormal",
    "CLOSED": "closed",
}
# Codes worth the same request again (the docs: "use the same out_refund_no and retry").
TRANSIENT_CODES = frozenset({"SYSTEM_ERROR", "FREQUENCY_LIMITED", "BIZERR_NEED_RETRY"})
# Why WeChat Pay refused, in words finance can act on; anything else: its own message.
REFUSALS = {
    "NOT_ENOUGH": "merchant balance too low for the refund: top up, then retry the same number",
    "SIGN_ERROR": "WeChat Pay refused our signature: check merchant_private_key/serial_no",
    "PARAM_ERROR": "WeChat Pay refused a parameter",
    "INVALID_REQUEST": "WeChat Pay refused the request (e.g. more than the payment has left)",
    "USER_ACCOUNT_ABNORMAL": "the payer's account is abnormal",
    "NO_AUTH": "the merchant account may not refund this way",
    "MCH_NOT_EXISTS": "WeChat Pay knows no such merchant (mchid)",
    "RESOURCE_NOT_EXISTS": "WeChat Pay knows no such payment",
    "ORDER_NOT_EXIST": "WeChat Pay knows no such payment",
}
# The bill_date of WeChat Pay's bills is a Beijing calendar day.
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
SIGNED_HEADERS = ("wechatpay-timestamp", "wechatpay-nonce", "wechatpay-signature")


def payment_field(reference: str) -> str:
    """`transaction_id` or `out_trade_no`: which of WeChat Pay's order numbers a reference is."""
    if _TRANSACTION_ID.match(reference):
        return "transaction_id"
    if _OUT_TRADE_NO.match(reference):
        return "out_trade_no"
    raise PermanentProviderError(
        f"payment reference {reference!r} is neither a WeChat Pay transaction_id "
        "(28 digits) nor an out_trade_no (6-32 letters, digits, _-|*)"
    )


def receipt_of(data: dict[str, Any]) -> ProviderReceipt:
    """Our receipt from WeChat Pay's refund object (create, query or abnormal-refund answer)."""
    wechat_status = str(data.get("status") or data.get("refund_status") or "")
    status = REFUND_STATUSES.get(wechat_status)
    if status is None:
        raise TransientProviderError(f"refund in a status we do not know: {wechat_status!r}")
    amount = data.get("amount") or {}
    success_time = data.get("success_time")
    reason = None
    if status in ("closed", "abnormal"):
        reason = (
            "ABNORMAL: the refund could not be credited to the payer (apply-abnormal-refund)"
            if status == "abnormal"
            else "CLOSED: WeChat Pay closed the refund; only a new number can refund again"
        )
    return ProviderReceipt(
        provider_reference=str(data.get("refund_id") or ""),
        executed_at=datetime.fromisoformat(success_time) if success_time else None,
        status=status,
        failure_reason=reason,
        merchant_refund_no=data.get("out_refund_no"),
        amount=amount.get("refund"),
        currency=amount.get("currency") or CURRENCY,
    )


class WeChatPayRoute:
    """One merchant account's refunds; `notify_url` is where WeChat Pay posts the outcome."""

    def __init__(
        self,
        account: WeChatPayAccount,
        notify_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.notify_url = notify_url
        self._key = account.private_key()
        self._platform_keys = account.platform_keys()
        self._clock = clock
        self._client = httpx.AsyncClient(
            base_url=account.api_base, timeout=timeout, transport=transport
        )

    async def refund(self, order: RefundOrder) -> ProviderReceipt:
        if order.amount.currency != CURRENCY:
            raise PermanentProviderError(
                f"WeChat Pay refunds in {CURRENCY} only, not {order.amount.currency}"
            )
        field = payment_field(order.payment_reference)
        total = await self._payment_total(order, field)
        body = {
            field: order.payment_reference,
            "out_refund_no": order.merchant_refund_no,
            "notify_url": self.notify_url,
            "amount": {"refund": order.amount.amount, "total": total, "currency": CURRENCY},
        }
        data = await self._call("POST", "/v3/refund/domestic/refunds", body, "refund")
        receipt = receipt_of(data)
        if receipt.failed:
            raise PermanentProviderError(f"WeChat Pay: {receipt.cause}", receipt)
        return receipt

    async def query(self, order: RefundOrder) -> ProviderReceipt | None:
        path = f"/v3/refund/domestic/refunds/{quote(order.merchant_refund_no, safe='')}"
        try:
            data = await self._call("GET", path, None, "refund query")
        except _NotFound:
            return None
        return receipt_of(data)

    async def apply_abnormal_refund(
        self,
        refund_id: str,
        merchant_refund_no: str,
        *,
        to: str = "MERCHANT_BANK_CARD",
        bank_type: str | None = None,
        bank_account: str | None = None,
        real_name: str | None = None,
    ) -> ProviderReceipt:
        """Finance's action on an ABNORMAL refund: send it to the merchant's bank card
        (`MERCHANT_BANK_CARD`), or to the payer's (`USER_BANK_CARD`, with bank_type, and
        the account and name encrypted with WeChat Pay's key)."""
        body: dict[str, Any] = {"out_refund_no": merchant_refund_no, "type": to}
        headers: dict[str, str] = {}
        if to == "USER_BANK_CARD":
            if not (bank_type and bank_account and real_name):
                raise PermanentProviderError("USER_BANK_CARD needs bank_type, account and name")
            serial, key = next(iter(self._platform_keys.items()))
            body["bank_type"] = bank_type
            body["bank_account"] = signing.encrypt_sensitive(key, bank_account)
            body["real_name"] = signing.encrypt_sensitive(key, real_name)
            headers["Wechatpay-Serial"] = serial
        path = f"/v3/refund/domestic/refunds/{quote(refund_id, safe='')}/apply-abnormal-refund"
        return receipt_of(await self._call("POST", path, body, "abnormal refund", headers))

    bill_zone = BEIJING

    async def bill(self, day: date) -> bytes:
        """The REFUND bill of Beijing day `day`: the signed answer (verified) names the file
        and its SHA1; the file itself is unsigned, so it is taken only if its SHA1 is that.
        `NO_STATEMENT_EXIST` (no refunds that day) is an empty bill: b""."""
        target = f"/v3/bill/tradebill?bill_date={day.isoformat()}&bill_type=REFUND"
        try:
            answer = await self._call("GET", target, None, "trade bill")
        except _NoStatement:
            return b""
        url = str(answer.get("download_url") or "")
        hash_type, expected = answer.get("hash_type"), str(answer.get("hash_value") or "")
        if hash_type != "SHA1" or not re.fullmatch(r"[0-9a-fA-F]{40}", expected):
            raise PermanentProviderError(f"trade bill answer: hash {hash_type!r} not usable")
        parts = urlsplit(url)
        if not parts.path.startswith("/v3/billdownload/"):
            raise PermanentProviderError("trade bill answer: no usable download_url")
        # Downloaded from the account's own API host, signed like any APIv3 request.
        data = await self._download(parts.path + (f"?{parts.query}" if parts.query else ""))
        digest = hashlib.sha1(data).hexdigest()  # noqa: S324 — WeChat Pay's documented hash_type
        if not hmac.compare_digest(digest, expected.lower()):
            raise PermanentProviderError(
                "WeChat Pay's bill does not match the SHA1 its signed answer gave: refused"
            )
        return data

    async def _download(self, target: str) -> bytes:
        headers = {
            "Authorization": signing.authorization(
                mchid=self.account.mchid,
                serial_no=self.account.merchant_serial_no,
                private_key=self._key,
                method="GET",
                target=target,
                body=b"",
                timestamp=str(int(self._clock())),
                nonce=signing.new_nonce(),
            )
        }
        try:
            response = await self._client.get(target, headers=headers)
        except httpx.TransportError as error:
            raise TransientProviderError(
                f"WeChat Pay unreachable (bill download): {type(error).__name__}"
            ) from error
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientProviderError(f"WeChat Pay bill download: HTTP {response.status_code}")
        if response.status_code != 200:
            raise PermanentProviderError(f"WeChat Pay bill download: HTTP {response.status_code}")
        return response.content

    async def close(self) -> None:
        await self._client.aclose()

    async def _payment_total(self, order: RefundOrder, field: str) -> int:
        """The original payment's total in fen, which WeChat Pay wants with every refund."""
        if order.payment_amount is not None:
            if order.payment_amount.currency != CURRENCY:
                raise PermanentProviderError("the original payment was not in CNY")
            return order.payment_amount.amount
        kind = "id" if field == "transaction_id" else "out-trade-no"
        ref = quote(order.payment_reference, safe="")
        path = f"/v3/pay/transactions/{kind}/{ref}?mchid={quote(self.account.mchid)}"
        try:
            data = await self._call("GET", path, None, "payment query")
        except _NotFound:
            raise PermanentProviderError(
                f"WeChat Pay knows no payment {order.payment_reference}"
            ) from None
        total = (data.get("amount") or {}).get("total")
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            raise PermanentProviderError(f"payment query gave no usable amount.total: {total!r}")
        return total

    async def _call(
        self,
        method: str,
        target: str,
        body: dict[str, Any] | None,
        what: str,
        extra_headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        content = (
            json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            if body is not None
            else b""
        )
        headers = {
            "Accept": "application/json",
            "Authorization": signing.authorization(
                mchid=self.account.mchid,
                serial_no=self.account.merchant_serial_no,
                private_key=self._key,
                method=method,
                target=target,
                body=content,
                timestamp=str(int(self._clock())),
                nonce=signing.new_nonce(),
            ),
            **(extra_headers or {}),
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = await self._client.request(method, target, content=content, headers=headers)
        except httpx.TransportError as error:  # includes timeouts: money may have moved
            raise TransientProviderError(
                f"WeChat Pay unreachable ({what}): {type(error).__name__}"
            ) from error
        status = response.status_code
        if status >= 500 or status == 429:
            raise TransientProviderError(
                f"WeChat Pay answered {status} ({what}): {_code(response)}", _retry_after(response)
            )
        if not self._verified(response):
            raise TransientProviderError(
                f"WeChat Pay's answer ({what}, HTTP {status}) is not signed by its key"
            )
        if 200 <= status < 300:
            try:
                data = response.json()
            except ValueError:
                raise TransientProviderError(f"WeChat Pay answered non-JSON ({what})") from None
            if not isinstance(data, dict):
                raise TransientProviderError(f"WeChat Pay answered a non-object ({what})")
            return data
        code = _code(response)
        if code in TRANSIENT_CODES:
            raise TransientProviderError(f"WeChat Pay: {code} ({what})", _retry_after(response))
        if status == 404 and code in ("RESOURCE_NOT_EXISTS", "ORDER_NOT_EXIST", ""):
            raise _NotFound()
        if code == "NO_STATEMENT_EXIST":
            raise _NoStatement()
        message = _message(response)
        explained = REFUSALS.get(code, "WeChat Pay refused")
        raise PermanentProviderError(f"{explained} ({what}: {status} {code}: {message})")

    def _verified(self, response: httpx.Response) -> bool:
        timestamp, nonce, signature = (response.headers.get(name, "") for name in SIGNED_HEADERS)
        if not (timestamp and nonce and signature) or signature.startswith(signing.SIGNTEST_PREFIX):
            return False
        key = self._platform_keys.get(signing.key_id(response.headers.get("wechatpay-serial", "")))
        if key is None:
            return False
        return signing.verify(
            key, signing.answer_message(timestamp, nonce, response.content), signature
        )


class _NotFound(Exception):
    """WeChat Pay verifiably knows no such resource."""


class _NoStatement(Exception):
    """WeChat Pay verifiably has no bill for the day (no refunds then)."""


def _code(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    return str(data.get("code") or "") if isinstance(data, dict) else ""


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    return str(data.get("message") or "")[:200] if isinstance(data, dict) else ""


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.replace(".", "", 1).isdigit() else None
