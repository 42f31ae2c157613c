"""The refund route through a tenant's Stripe account, on Stripe's official SDK.

Idempotency: every request for one merchant refund number carries the same
`Idempotency-Key` (`refunds-<number>`), so a retry after a timeout replays Stripe's first
answer instead of refunding twice. Stripe forgets keys after 24 hours; for an order first
sent longer ago than that, the payment's refunds are listed and matched on
`metadata[merchant_refund_no]` before anything new is sent. That listing is also `query`:
Stripe cannot look a refund up by our number.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import stripe

from services.payout.providers.base import (
    PermanentProviderError,
    ProviderReceipt,
    RefundOrder,
    TransientProviderError,
)
from services.payout.providers.stripe.account import StripeAccount
from services.payout.providers.stripe.objects import (
    NUMBER_KEY,
    REFUND_ID_KEY,
    TENANT_KEY,
    UnreadableRefund,
    merchant_refund_no,
    receipt_of,
)
from services.payout.providers.stripe.settlement import COLUMNS, REPORT_TYPE
from services.payout.providers.stripe.units import UnmappableAmount, to_stripe

# How long Stripe keeps an idempotency key (docs.stripe.com/api/idempotent_requests).
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=24)
PAGE_SIZE = 100
TIMEOUT_SECONDS = 10.0
# Report runs take seconds to minutes at Stripe: poll this often, this many times, then give up
# (a transient error: asking again later reuses nothing, a new run is cheap).
REPORT_POLL_SECONDS = 2.0
REPORT_POLLS = 30
# Where Stripe serves report files; the secret key goes to no other host than these and the
# account's api_base.
FILES_HOST = "files.stripe.com"


def idempotency_key(number: str) -> str:
    return f"refunds-{number}"


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, on a transport of our choosing (tests: the emulator in-process)."""

    def __init__(self, timeout: float, transport: httpx.AsyncBaseTransport | None) -> None:
        super().__init__(timeout=timeout)
        if transport is not None:
            # The SDK builds its AsyncClient itself and offers no transport argument.
            self._client_async = httpx.AsyncClient(transport=transport)


class StripeRoute:
    """Refunds card payments (`pi_…` or `ch_…`) through one tenant's Stripe account.

    `notify_url` is kept for the record only: Stripe sends webhooks to the endpoint
    configured in the account's Dashboard, not to a URL given per request.
    """

    def __init__(
        self,
        account: StripeAccount,
        notify_url: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = TIMEOUT_SECONDS,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.account = account
        self.notify_url = notify_url
        self._clock = clock or (lambda: datetime.now(UTC))
        self._http = _HTTPXClient(timeout, transport)
        # Report files are downloaded outside the SDK (it has no call for file contents).
        self._files = httpx.AsyncClient(timeout=timeout, transport=transport)
        self.report_poll_seconds = REPORT_POLL_SECONDS
        # No retries inside the SDK: the executor owns retries, backoff and their record.
        self._stripe = stripe.StripeClient(
            account.secret_key.get_secret_value(),
            base_addresses={"api": account.api_base},
            http_client=self._http,
            max_network_retries=0,
        )

    async def refund(self, order: RefundOrder) -> ProviderReceipt:
        payment = _payment_param(order.payment_reference)
        try:
            amount, _ = to_stripe(order.amount)
        except UnmappableAmount as error:
            raise PermanentProviderError(f"stripe: {error}") from None
        if self._key_may_be_forgotten(order):
            found = await self.query(order)
            if found is not None:
                return _final(found)
        params: dict[str, Any] = {
            **payment,
            "amount": amount,
            "metadata": {
                NUMBER_KEY: order.merchant_refund_no,
                REFUND_ID_KEY: order.refund_id,
                TENANT_KEY: order.tenant,
            },
        }
        options: dict[str, Any] = {"idempotency_key": idempotency_key(order.merchant_refund_no)}
        try:
            refund = await self._stripe.v1.refunds.create_async(params, options)  # type: ignore[arg-type]
        except stripe.StripeError as error:
            raise _mapped(error, "refund") from error
        return _final(_read(refund.to_dict()))

    async def query(self, order: RefundOrder) -> ProviderReceipt | None:
        """The refund made under the order's number, from the payment's refunds."""
        params: dict[str, Any] = {**_payment_param(order.payment_reference), "limit": PAGE_SIZE}
        matches: list[ProviderReceipt] = []
        while True:
            try:
                page = await self._stripe.v1.refunds.list_async(params)  # type: ignore[arg-type]
            except stripe.StripeError as error:
                raise _mapped(error, "refund listing") from error
            for refund in page.data:
                plain = refund.to_dict()
                if merchant_refund_no(plain) == order.merchant_refund_no:
                    matches.append(_read(plain))
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        # Two refunds under one number only if a key expired and was reused: the one that
        # moved (or may move) money is the truth, the failed one is history.
        for receipt in matches:
            if not receipt.failed:
                return receipt
        return matches[0] if matches else None

    bill_zone = UTC  # Stripe's reports are by UTC interval

    async def bill(self, day: date) -> bytes:
        """The itemized balance change report of `day` (UTC, 00:00 to 24:00) with our columns:
        a report run is created, polled until it succeeds (bounded), and its file downloaded."""
        start = int(datetime.combine(day, time(), UTC).timestamp())
        params: dict[str, Any] = {
            "report_type": REPORT_TYPE,
            "parameters": {
                "interval_start": start,
                "interval_end": start + 86400,
                "columns": list(COLUMNS),
            },
        }
        try:
            run = await self._stripe.v1.reporting.report_runs.create_async(params)  # type: ignore[arg-type]
            for _ in range(REPORT_POLLS):
                if run.status != "pending":
                    break
                await asyncio.sleep(self.report_poll_seconds)
                run = await self._stripe.v1.reporting.report_runs.retrieve_async(run.id)
        except stripe.StripeError as error:
            raise _mapped(error, "report run") from error
        if run.status == "pending":
            raise TransientProviderError(f"stripe report run {run.id} still pending")
        if run.status != "succeeded" or run.result is None or not run.result.url:
            reason = getattr(run, "error", None) or run.status
            raise PermanentProviderError(f"stripe report run {run.id} failed: {reason}"[:300])
        return await self._download(str(run.result.url))

    async def _download(self, url: str) -> bytes:
        absolute = urljoin(self.account.api_base + "/", url)
        host = urlsplit(absolute).hostname
        if host not in (FILES_HOST, urlsplit(self.account.api_base).hostname):
            # The URL came in Stripe's answer; the key goes to Stripe's hosts only.
            raise PermanentProviderError(f"stripe report file on a foreign host {host!r}")
        key = self.account.secret_key.get_secret_value()
        try:
            response = await self._files.get(absolute, headers={"Authorization": f"Bearer {key}"})
        except httpx.TransportError as error:
            raise TransientProviderError(f"stripe file download: {type(error).__name__}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientProviderError(f"stripe file download: HTTP {response.status_code}")
        if response.status_code != 200:
            raise PermanentProviderError(f"stripe file download: HTTP {response.status_code}")
        return response.content

    async def close(self) -> None:
        await self._http.close_async()
        await self._files.aclose()

    def _key_may_be_forgotten(self, order: RefundOrder) -> bool:
        first = order.first_sent_at
        return first is not None and self._clock() - first > IDEMPOTENCY_KEY_LIFETIME


def _payment_param(reference: str) -> dict[str, str]:
    if reference.startswith("pi_"):
        return {"payment_intent": reference}
    if reference.startswith("ch_"):
        return {"charge": reference}
    raise PermanentProviderError(
        f"stripe: payment reference must be a PaymentIntent (pi_…) or Charge (ch_…), got "
        f"{reference[:40]!r}"
    )


def _read(refund: dict[str, Any]) -> ProviderReceipt:
    try:
        return receipt_of(refund)
    except UnreadableRefund as error:
        # Money may have moved under this answer: a query later can still settle it.
        raise TransientProviderError(f"stripe: unreadable refund: {error}") from None


def _final(receipt: ProviderReceipt) -> ProviderReceipt:
    if receipt.failed:
        raise PermanentProviderError(f"stripe: {receipt.cause}", receipt)
    return receipt


def _mapped(error: stripe.StripeError, what: str) -> Exception:
    """Stripe's error as ours: transient when retrying the same key can still help."""
    status = error.http_status
    message = f"stripe {what}: {status or 'no answer'} {error.user_message or error}"[:300]
    if isinstance(error, stripe.IdempotencyError):
        # Same key, other parameters: a bug on our side that no retry can fix.
        return PermanentProviderError(message)
    if isinstance(error, stripe.APIConnectionError) or status is None:
        return TransientProviderError(message)
    if status in (409, 429) or status >= 500:
        # 409 is Stripe's lock timeout on a concurrent request with the same key.
        return TransientProviderError(message, _retry_after(error))
    return PermanentProviderError(message)


def _retry_after(error: stripe.StripeError) -> float | None:
    headers = error.headers or {}
    value = str(headers.get("retry-after") or headers.get("Retry-After") or "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 86400 else None  # also refuses nan and inf
