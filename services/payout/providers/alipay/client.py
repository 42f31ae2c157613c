"""A tenant's refund route through Alipay's open platform: `alipay.trade.refund`, and
`alipay.trade.fastpay.refund.query` to learn what became of a refund request number.

Alipay is idempotent by `out_request_no` within a trade: a repeat with the same number and
amount refunds nothing twice and answers `fund_change=N`. That `N` is no failure, and a
`10000` from the query only means the query worked: only `refund_status=REFUND_SUCCESS`
says the money moved, so every unclear answer is settled by the query.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from services.payout.providers.alipay.account import AlipayAccount
from services.payout.providers.alipay.amounts import (
    BEIJING,
    CURRENCY,
    beijing_now,
    beijing_time,
    fen,
    yuan,
)
from services.payout.providers.alipay.signing import (
    content_to_sign,
    sign,
    signed_response_text,
    verify,
)
from services.payout.providers.base import (
    PermanentProviderError,
    ProviderReceipt,
    RefundOrder,
    TransientProviderError,
)

REFUND = "alipay.trade.refund"
REFUND_QUERY = "alipay.trade.fastpay.refund.query"
BILL_URL_QUERY = "alipay.data.dataservice.bill.downloadurl.query"
# A bill larger than this is no trade bill of one day we can reconcile in one request.
MAX_BILL_BYTES = 64 * 1024 * 1024
SUCCESS_CODE = "10000"
# Alipay's own trade numbers are 28 digits (e.g. 2014112611001004680073956707); any other
# payment reference is the merchant's `out_trade_no`.
TRADE_NO = re.compile(r"^[0-9]{28}$")
# "Try again with the same parameters": Alipay's system errors, and 20000 service unavailable.
TRANSIENT_CODES = frozenset({"20000"})
TRANSIENT_SUB_CODES = frozenset(
    {"ACQ.SYSTEM_ERROR", "aop.unknow-error", "isp.unknow-error", "isp.unknown-error"}
)
# A query that finds no trade: Alipay never received a refund under this number either.
NOT_FOUND_SUB_CODES = frozenset({"ACQ.TRADE_NOT_EXIST"})


class AlipayRoute:
    """Refunds through one merchant app; notifications go to `notify_url`."""

    def __init__(
        self,
        account: AlipayAccount,
        notify_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account = account
        self.notify_url = notify_url
        self._private_key = account.private_key()
        self._alipay_key = account.alipay_key()
        self._clock = clock
        self._client = httpx.AsyncClient(
            base_url=account.api_base, timeout=timeout, transport=transport
        )

    async def refund(self, order: RefundOrder) -> ProviderReceipt:
        """Ask for the refund: `success` once the money moved, `processing` while Alipay has
        it but has not paid yet; raises Transient (retry the same number) or Permanent."""
        biz = {
            **_trade_of(order),
            "refund_amount": yuan(order.amount.amount),
            "out_request_no": order.merchant_refund_no,
        }
        answer = await self._call(REFUND, biz)
        if answer.get("code") != SUCCESS_CODE:
            raise _refusal(REFUND, answer)
        if answer.get("fund_change") == "Y":
            executed = _time_or_none(answer.get("gmt_refund_pay")) or datetime.fromtimestamp(
                self._clock(), BEIJING
            )
            return self._receipt(order, answer, "success", executed, order.amount.amount)
        # `N`: a repeat, or a refund accepted but not yet paid. Only the query can tell.
        found = await self.query(order)
        if found is not None:
            return found
        return self._receipt(order, answer, "processing", None, order.amount.amount)

    async def query(self, order: RefundOrder) -> ProviderReceipt | None:
        """The refund under the order's number: success, processing, or None if Alipay shows
        none (never received, or refused: either way the same number may be sent again)."""
        biz = {
            **_trade_of(order),
            "out_request_no": order.merchant_refund_no,
            "query_options": ["gmt_refund_pay"],
        }
        answer = await self._call(REFUND_QUERY, biz)
        code = answer.get("code")
        if code != SUCCESS_CODE:
            if answer.get("sub_code") in NOT_FOUND_SUB_CODES:
                return None
            raise _refusal(REFUND_QUERY, answer)
        status = answer.get("refund_status")
        if status == "REFUND_SUCCESS":
            try:
                amount = fen(str(answer.get("refund_amount", "")))
            except ValueError as error:
                raise PermanentProviderError(f"unusable refund query answer: {error}") from None
            executed = _time_or_none(answer.get("gmt_refund_pay"))
            return self._receipt(order, answer, "success", executed, amount)
        if status:  # a status Alipay may add (e.g. bank-card refunds under way): not final
            return self._receipt(order, answer, "processing", None, order.amount.amount)
        return None

    bill_zone = BEIJING  # Alipay's bill_date is a Beijing calendar day

    async def bill(self, day: date) -> bytes:
        """The trade bill (zip) of Beijing day `day`: its download URL from Alipay's signed
        answer (verified before it is believed), then the file, which Alipay does not sign."""
        answer = await self._call(
            BILL_URL_QUERY, {"bill_type": "trade", "bill_date": day.isoformat()}
        )
        if answer.get("code") != SUCCESS_CODE:
            raise _refusal(BILL_URL_QUERY, answer)
        url = answer.get("bill_download_url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
            raise PermanentProviderError(f"{BILL_URL_QUERY}: no usable bill_download_url")
        try:
            # The URL is Alipay's own, short-lived and needing no credentials: nothing of ours
            # is sent with it.
            response = await self._client.get(url)
        except httpx.TransportError as error:
            raise TransientProviderError(f"alipay bill download: {type(error).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(f"alipay bill download: HTTP {response.status_code}")
        if response.status_code != 200:
            raise PermanentProviderError(f"alipay bill download: HTTP {response.status_code}")
        if len(response.content) > MAX_BILL_BYTES:
            raise PermanentProviderError("alipay bill download: larger than 64 MiB")
        return response.content

    async def close(self) -> None:
        await self._client.aclose()

    def _receipt(
        self,
        order: RefundOrder,
        answer: dict[str, Any],
        status: str,
        executed_at: datetime | None,
        amount: int,
    ) -> ProviderReceipt:
        return ProviderReceipt(
            provider_reference=str(answer.get("trade_no") or order.payment_reference),
            executed_at=executed_at,
            status=status,
            merchant_refund_no=order.merchant_refund_no,
            amount=amount,
            currency=CURRENCY,
        )

    def _params(self, method: str, biz: dict[str, Any]) -> dict[str, str]:
        params = {
            "app_id": self.account.app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": beijing_now(self._clock()),
            "version": "1.0",
            "biz_content": json.dumps(biz, separators=(",", ":"), ensure_ascii=False),
        }
        if method == REFUND and self.notify_url:
            params["notify_url"] = self.notify_url
        params["sign"] = sign(self._private_key, content_to_sign(params))
        return params

    async def _call(self, method: str, biz: dict[str, Any]) -> dict[str, Any]:
        """The verified response object of `method`; Transient for anything unclear."""
        try:
            response = await self._client.post(
                "/gateway.do", params={"charset": "utf-8"}, data=self._params(method, biz)
            )
        except httpx.TransportError as error:  # timeouts included: money may have moved
            raise TransientProviderError(f"alipay unreachable: {type(error).__name__}") from error
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(f"alipay answered HTTP {response.status_code}")
        if response.status_code != 200:
            raise PermanentProviderError(f"alipay answered HTTP {response.status_code}")
        return self._verified(method, response.text)

    def _verified(self, method: str, raw: str) -> dict[str, Any]:
        try:
            data = json.loads(raw)
        except ValueError:
            raise TransientProviderError(f"{method}: unreadable answer") from None
        key = method.replace(".", "_") + "_response"
        if not isinstance(data, dict):
            raise TransientProviderError(f"{method}: unreadable answer")
        if key not in data and "error_response" in data:
            key = "error_response"
        body = data.get(key)
        if not isinstance(body, dict):
            raise TransientProviderError(f"{method}: answer without {key}")
        signature = data.get("sign")
        if isinstance(signature, str) and signature:
            text = signed_response_text(raw, key)
            if text is None or not verify(self._alipay_key, text, signature):
                # Not Alipay's word (or the wrong Alipay key configured): it cannot settle
                # anything, and the money may have moved, so never a final failure.
                raise TransientProviderError(
                    f"{method}: answer's signature does not verify with alipay_public_key"
                )
        elif body.get("code") == SUCCESS_CODE:
            raise TransientProviderError(f"{method}: unsigned success answer")
        # Unsigned refusals are read: Alipay cannot sign for an app it could not identify.
        return body


def _trade_of(order: RefundOrder) -> dict[str, str]:
    if order.amount.currency != CURRENCY:
        raise PermanentProviderError(
            f"alipay refunds CNY only, not {order.amount.currency} (convert first)"
        )
    if order.amount.amount <= 0:
        raise PermanentProviderError("alipay refunds a positive amount only")
    reference = order.payment_reference
    if not reference or len(reference) > 64:
        raise PermanentProviderError("alipay payment reference must be 1-64 characters")
    if TRADE_NO.match(reference):
        return {"trade_no": reference}
    return {"out_trade_no": reference}


def _refusal(method: str, answer: dict[str, Any]) -> Exception:
    code = str(answer.get("code") or "")
    sub_code = str(answer.get("sub_code") or "")
    message = answer.get("sub_msg") or answer.get("msg") or ""
    detail = f"{method} refused: {code} {sub_code} {message}"
    if code in TRANSIENT_CODES or sub_code in TRANSIENT_SUB_CODES:
        return TransientProviderError(detail.strip())
    # 40004 business errors (trade missing or closed, amount over what remains, balance
    # short), 40002 invalid parameters or signature, 4000x permissions: retrying the same
    # request cannot help. Alipay binds no refund to the number, so no receipt.
    return PermanentProviderError(detail.strip())


def _time_or_none(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return beijing_time(value)
    except ValueError:
        return None
