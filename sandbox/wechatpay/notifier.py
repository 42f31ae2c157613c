"""Settles PROCESSING refunds when due and posts their signed, encrypted notifications,
retrying like WeChat Pay until the merchant answers 2xx (or attempts run out)."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx

from sandbox.serving import DueWork
from sandbox.wechatpay.faults import Faults
from sandbox.wechatpay.ledger import Ledger, Notification, rfc3339
from sandbox.wechatpay.protocol import Merchant, Platform, encrypt_resource, signed_headers

log = logging.getLogger(__name__)
SUMMARIES = {
    "REFUND.SUCCESS": "退款成功",
    "REFUND.ABNORMAL": "退款异常",
    "REFUND.CLOSED": "退款关闭",
}


class Notifier(DueWork):
    WHAT = "sandbox wechatpay notifier"

    def __init__(
        self, ledger: Ledger, faults: Faults, platform: Platform, merchants: dict[str, Merchant]
    ) -> None:
        super().__init__()
        self.ledger = ledger
        self.faults = faults
        self.platform = platform
        self.merchants = merchants

    def serial(self) -> str:
        if self.faults.get("answer_serial") == "certificate":
            return self.platform.certificate_serial
        return self.platform.public_key_id

    def envelope(self, notice: Notification) -> bytes:
        with self.ledger.lock:
            refund = self.ledger.refunds[notice.out_refund_no]
            plain = json.dumps(refund.notice(), ensure_ascii=False).encode()
            key = self.merchants[refund.mchid].apiv3_key
        body = {
            "id": notice.id,
            "create_time": rfc3339(time.time()),
            "resource_type": "encrypt-resource",
            "event_type": notice.event_type,
            "summary": SUMMARIES[notice.event_type],
            "resource": encrypt_resource(key, plain, "refund"),
        }
        return json.dumps(body, ensure_ascii=False).encode()

    async def step(self, client: httpx.AsyncClient, sending: set[asyncio.Task[None]]) -> float:
        now = time.time()
        await asyncio.to_thread(self.ledger.complete_due, now, self.faults.plan_notice)
        for notice in await asyncio.to_thread(self.ledger.due_notifications, now):
            self.send(sending, client, notice)
        return self.wait_for(await asyncio.to_thread(self.ledger.next_due))

    async def _post(
        self, client: httpx.AsyncClient, url: str, body: bytes, *, signtest: bool
    ) -> str:
        headers = {"Content-Type": "application/json", "User-Agent": "Mozilla/4.0"}
        headers |= signed_headers(self.platform, body, serial=self.serial(), signtest=signtest)
        try:
            response = await client.post(url, content=body, headers=headers)
        except Exception as error:  # unreachable, timed out, unusable URL: a failed attempt
            return type(error).__name__
        return f"HTTP {response.status_code}"

    async def deliver(self, client: httpx.AsyncClient, delivery: Notification) -> None:
        body = self.envelope(delivery)
        results = []
        if delivery.probe and delivery.attempts == 0:
            # The probe precedes the genuine notification; a verifying merchant refuses it.
            results.append(
                "probe " + await self._post(client, delivery.notify_url, body, signtest=True)
            )
        result = await self._post(client, delivery.notify_url, body, signtest=delivery.missign)
        results.append(result)
        max_attempts = self.faults.get("callback_max_attempts")
        first_retry = self.faults.get("callback_retry_ms") / 1000.0
        with self.ledger.lock:
            delivery.attempts += 1
            delivery.results.extend(results)
            if result.startswith("HTTP 2"):
                delivery.state = "delivered"
            elif delivery.attempts >= max_attempts:
                delivery.state = "failed"
                log.warning("notification %s gave up: %s", delivery.id, result)
            else:
                delivery.state = "pending"
                delivery.next_attempt_at = time.time() + first_retry * 2 ** (delivery.attempts - 1)
        await asyncio.to_thread(self.ledger.save)
        self.wake()
