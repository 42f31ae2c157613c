"""The sender of one outbound channel (e-mail or SMS): attempts each due message, retries
with backoff, and gives up for good after the configured attempts.

Exactly once per (refund, step, channel):
- A repeated upstream event schedules nothing new, and a message already sent, failed or
  uncertain is never attempted again (the aggregate, loaded fresh, says so).
- E-mail *claims* each attempt (`AttemptStarted`) before handing it to SMTP. If the process
  dies between the hand-over and the record, the restarted sender finds the claim without
  an outcome and marks the message `uncertain` instead of sending it again: SMTP cannot say
  whether the message left, and a second copy is the worse mistake. A person can resend
  it (`POST /v1/notifications/{id}/resend`); the customer's in-app feed has it anyway.
- Addresses are stored sealed and opened only here, in memory, right before a message is
  composed. When the customer's key was erased the message fails with `customer_erased`
  and is not sent.
- SMS needs no claim: the provider keeps our idempotency key (the notification id), so a
  repeat after a crash is recognised there and not sent twice.

Run one sender per channel per service at a time (like the relay).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

from services.notify.application import NotifyApplication
from services.notify.messages.channels import Channel, Outgoing, TryLater, Undeliverable
from services.notify.messages.domain import Correspondence, Due
from services.notify.messages.outbox import Outbox
from services.notify.messages.steps import CUSTOMER_ERASED, EMAIL, SMS
from shared.aio import sleep_or_stop
from shared.contracts import SEALED_EMAIL, SEALED_PHONE
from shared.health import Health
from shared.keystore import SealedValueInvalid

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RETRY_DELAY = timedelta(hours=1)
JITTER = 0.1
ADDRESS_FIELDS: dict[str, str] = {EMAIL: SEALED_EMAIL, SMS: SEALED_PHONE}


@dataclass(eq=False)  # one sender is one sender: compared and hashed by identity
class Sender:
    wait: ClassVar[float] = 0.5  # longest idle sleep between looks at the log
    store_backoff: ClassVar[tuple[float, float]] = (0.1, 5.0)

    app: NotifyApplication
    channel: Channel
    _: KW_ONLY
    attempts: int = 10
    backoff: timedelta = timedelta(seconds=30)
    concurrency: int = 8
    health: Health = field(default_factory=Health)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    rng: random.Random = field(default_factory=random.Random)
    # Set once the start-up scan is done.
    ready: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    # What became of the messages it handled, counted since it started.
    sent: int = field(default=0, init=False)
    failed: int = field(default=0, init=False)
    retried: int = field(default=0, init=False)
    uncertain: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.part = f"{self.channel.name} sender"
        self.outbox = Outbox(self.app, self.channel.name)

    async def run(self, stop: asyncio.Event) -> None:
        low, high = self.store_backoff
        backoff = low
        while not stop.is_set():
            try:
                await self._serve(stop)
                backoff = low
            except Exception:  # store faults and bugs alike: report, back off, start anew
                log.exception("%s failed; resuming in %.1fs", self.part, backoff)
                self.health.report(self.part, False)
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, high)

    async def _serve(self, stop: asyncio.Event) -> None:
        self.outbox = Outbox(self.app, self.channel.name)
        unfinished = await asyncio.to_thread(self.outbox.scan)
        for correspondence_id, step in unfinished:
            # Claimed by a sender that died before recording what happened.
            await asyncio.to_thread(self._mark_uncertain, correspondence_id, step)
            self.uncertain += 1
            log.warning("%s of %s: attempt without outcome; uncertain", step, correspondence_id)
        self.ready.set()
        self.health.report(self.part, True)
        while not stop.is_set():
            await asyncio.to_thread(self.outbox.follow)
            ready = self.outbox.take_ready(self.clock(), self.concurrency)
            if ready:
                results = await asyncio.gather(*(self._check(cid, stop) for cid in ready))
                if not all(results):
                    return  # stopping
                continue
            await sleep_or_stop(stop, self._idle_seconds())

    def _mark_uncertain(self, correspondence_id: uuid.UUID, step: str) -> None:
        self.app.update(correspondence_id, lambda c: c.mark_uncertain(step, self.channel.name))

    def _idle_seconds(self) -> float:
        upcoming = self.outbox.next_due()
        if upcoming is None:
            return self.wait
        return max(0.0, min(self.wait, (upcoming - self.clock()).total_seconds()))

    async def _check(self, correspondence_id: uuid.UUID, stop: asyncio.Event) -> bool:
        """Attempt every due message of one correspondence; False only when stopping."""
        correspondence = await asyncio.to_thread(
            self.app.messages.correspondence, correspondence_id
        )
        for due in correspondence.pending(channels=(self.channel.name,)):
            if due.retry_at is not None and due.retry_at > self.clock():
                self.outbox.wake(correspondence_id, due.retry_at)
                continue
            if not await self._attempt(correspondence, due, stop):
                return False
        return True

    async def _attempt(self, correspondence: Correspondence, due: Due, stop: asyncio.Event) -> bool:
        cid = correspondence.id
        try:
            address = await asyncio.to_thread(self._open_address, due)
        except SealedValueInvalid as error:
            log.error("%s/%s: address does not open: %s", due.step, self.channel.name, error)
            return bool(await self._store(stop, self._failed, cid, due, f"address: {error}"))
        if address is None:
            log.info("%s/%s not sent: customer erased", due.step, self.channel.name)
            return bool(await self._store(stop, self._failed, cid, due, CUSTOMER_ERASED))
        due = replace(due, address=address)
        try:
            outgoing = self.channel.compose(correspondence.refund_id, due)
        except Exception as error:  # a message that cannot be rendered must not hold the rest
            log.exception("cannot compose %s/%s", due.step, self.channel.name)
            return bool(await self._store(stop, self._failed, cid, due, f"template: {error}"))
        attempt = due.attempts + 1
        if self.channel.claims:
            # Our token: if the claim is stored but its answer lost, the retry knows it.
            claim = uuid.uuid4().hex
            claimed = await self._store(
                stop, self.app.messages.start_attempt, cid, due.step, self.channel.name, claim
            )
            if claimed is None:
                return not stop.is_set()  # no longer open, or stopping
            attempt = claimed
        try:
            provider_id = await asyncio.to_thread(self.channel.send, outgoing)
        except TryLater as error:
            self.health.report(self.part, False)
            if attempt >= self.attempts:
                cause = f"{error} (gave up after {attempt} attempts)"
                return bool(await self._store(stop, self._failed, cid, due, cause))
            retry_at = self.clock() + self._delay(attempt, error.retry_after)
            self.retried += 1
            log.warning("%s/%s attempt %d: %s", due.step, self.channel.name, attempt, error)
            return bool(await self._store(stop, self._retry_later, cid, due, str(error), retry_at))
        except Undeliverable as error:
            log.error("%s/%s refused for good: %s", due.step, self.channel.name, error)
            return bool(await self._store(stop, self._failed, cid, due, str(error)))
        self.health.report(self.part, True)
        return bool(await self._store(stop, self._record_sent, cid, due, outgoing, provider_id))

    def _open_address(self, due: Due) -> str | None:
        """The plaintext address, in memory only; None when the customer was erased. Asked of
        the store, not the cache: nothing leaves after an erasure has returned."""
        field = ADDRESS_FIELDS[self.channel.name]
        return self.app.keys.reveal(due.address, field=field, fresh=True)

    def _delay(self, attempt: int, retry_after: float | None) -> timedelta:
        delay = self.backoff * (2 ** (attempt - 1))
        delay = min(delay, MAX_RETRY_DELAY) * (1 + self.rng.uniform(-JITTER, JITTER))
        if retry_after is not None and timedelta(seconds=retry_after) > delay:
            delay = min(timedelta(seconds=retry_after), MAX_RETRY_DELAY)
        return delay

    def _record_sent(self, cid: uuid.UUID, due: Due, outgoing: Outgoing, provider_id: str) -> bool:
        self.app.update(
            cid,
            lambda c: c.record_sent(
                step=due.step,
                channel=self.channel.name,
                message_id=provider_id,
                recipient_masked=outgoing.recipient_masked,
                locale=outgoing.locale,
                template=outgoing.template,
                sent_at=self.clock(),
            ),
        )
        self.sent += 1
        return True

    def _retry_later(self, cid: uuid.UUID, due: Due, error: str, retry_at: datetime) -> bool:
        self.app.update(
            cid,
            lambda c: c.record_attempt_failed(
                step=due.step, channel=self.channel.name, error=error, retry_at=retry_at
            ),
        )
        return True

    def _failed(self, cid: uuid.UUID, due: Due, cause: str) -> bool:
        self.app.update(
            cid,
            lambda c: c.record_failed(
                step=due.step, channel=self.channel.name, cause=cause, failed_at=self.clock()
            ),
        )
        self.failed += 1
        return True

    async def _store(self, stop: asyncio.Event, call: Callable[..., T], *args: object) -> T | None:
        """Run a store call in a thread until it succeeds (the store may be briefly down);
        None when stopping first. A claim left behind makes the message uncertain at the next
        start, never sent twice."""
        low, high = self.store_backoff
        backoff = low
        while not stop.is_set():
            try:
                return await asyncio.to_thread(call, *args)
            except Exception:
                log.exception("%s: store call failed; retrying in %.1fs", self.part, backoff)
                self.health.report(self.part, False)
                await sleep_or_stop(stop, backoff)
                backoff = min(backoff * 2, high)
        return None
