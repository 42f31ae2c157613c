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

Messages are handled in rounds, to keep the store's work per message small: a round takes
the ready correspondences (loaded once each), stores all its e-mail claims in one save,
hands the messages over one after the other on a kept-open connection, then stores all their
outcomes in one save. A round claims at most `concurrency` e-mails: the most a crash may
leave uncertain. A save that meets a concurrent write is decided again on fresh state, where
a claim already stored is recognised by its token and one taken by another is refused.

A sender looks at the log when this process stores something that may make a message due (a
correspondence opened, its contact, a step scheduled, a resend asked for), at most every
`batch_seconds` so that busy stretches are handled in rounds (a full round is followed by
the next at once: a backlog); a quiet log is still looked at now and then, for other
processes' appends (a replica's consumer), which ring no bell here.

Run one sender per channel per service at a time (like the relay).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from copy import deepcopy
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import ClassVar, TypeVar

from services.notify.application import NotifyApplication
from services.notify.messages.application import Decision, Loaded
from services.notify.messages.channels import Channel, Outgoing, TryLater, Undeliverable
from services.notify.messages.domain import Correspondence, Due
from services.notify.messages.outbox import WAKING, Outbox
from services.notify.messages.steps import CUSTOMER_ERASED, EMAIL, SMS
from shared.aio import sleep_or_stop
from shared.contracts import SEALED_EMAIL, SEALED_PHONE
from shared.follower import IDLE_POLL_SECONDS, OTHERS_POLL_SECONDS, Pacing
from shared.health import Health
from shared.keystore import SealedValueInvalid, key_id_of

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_RETRY_DELAY = timedelta(hours=1)
JITTER = 0.1
ADDRESS_FIELDS: dict[str, str] = {EMAIL: SEALED_EMAIL, SMS: SEALED_PHONE}
SMS_ROUND_FACTOR = 8  # an SMS round takes on this many times `concurrency` messages


@dataclass
class _Message:
    """One due message of a round, and what became of it (`outcome`, once known)."""

    cid: uuid.UUID
    due: Due
    claim: str  # our token for its attempt (e-mail)
    attempt: int | None  # None: claimed by another, not ours to send
    outgoing: Outgoing | None = None
    outcome: Decision | None = None
    kind: str = ""  # sent, retry or failed


@dataclass(eq=False)  # one sender is one sender: compared and hashed by identity
class Sender:
    # The longest pause between looks at a quiet log (for other processes' appends); after a
    # look that found something, the first comes sooner and the next ones less and less soon.
    wait: ClassVar[float] = IDLE_POLL_SECONDS
    # The shortest time between looks while messages keep coming: they go in rounds (a round
    # costs two saves and a few thread hops, whatever its size), not one round each.
    batch_seconds: ClassVar[float] = 0.5
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

    @property
    def per_round(self) -> int:
        """Messages (and correspondences) one round takes on: e-mails are claimed, so their
        round is as small as the crash bound; SMS claims nothing and takes on more."""
        return self.concurrency if self.channel.claims else self.concurrency * SMS_ROUND_FACTOR

    def _mark_uncertain(self, unfinished: list[tuple[uuid.UUID, str]]) -> None:
        channel = self.channel.name
        self.app.messages.record_outcomes(
            [(cid, _uncertain(step, channel)) for cid, step in unfinished]
        )

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
        if unfinished:
            # Claimed by a sender that died before recording what happened.
            await asyncio.to_thread(self._mark_uncertain, unfinished)
            self.uncertain += len(unfinished)
            for correspondence_id, step in unfinished:
                log.warning("%s of %s: attempt without outcome; uncertain", step, correspondence_id)
        self.ready.set()
        self.health.report(self.part, True)
        first = min(OTHERS_POLL_SECONDS, self.wait)
        pacing = Pacing(self.batch_seconds, first=first, longest=self.wait)
        while not stop.is_set():
            rings = self.app.appended.rings
            read = await asyncio.to_thread(self.outbox.follow)
            looked = time.monotonic()
            ready = self.outbox.take_ready(self.clock(), self.per_round)
            if ready:
                if not await self._round(ready, stop):
                    return  # stopping
                if len(ready) == self.per_round:
                    continue  # a backlog: its next round at once
            # A round that took all that was ready is followed by a pause like a look that
            # found nothing due: the next round gathers what falls due meanwhile (rounds one
            # after the other took about two refunds' messages each at 20 refunds/s).
            pacing.looked(found=bool(read or ready))
            due_in = self._due_in()
            await pacing.pause(self.app.appended, rings, stop, looked, WAKING, due_in=due_in)

    def _due_in(self) -> float | None:
        upcoming = self.outbox.next_due()
        return None if upcoming is None else (upcoming - self.clock()).total_seconds()

    async def _round(self, ready: list[uuid.UUID], stop: asyncio.Event) -> bool:
        """One round: the due messages of `ready`, claimed together, sent, recorded together;
        False only when stopping."""
        loaded: Loaded = {}  # the round's correspondences, decided on without reloading
        # A worker thread even on SQLite (see `ServiceApplication.call`): a round over a
        # backlog loads each of its correspondences, which would hold up the loop.
        batch = await asyncio.to_thread(self._prepare, ready, loaded)
        outcomes = [m for m in batch if m.outcome is not None]  # failed before any attempt
        sending = [m for m in batch if m.outcome is None]
        if sending and self.channel.claims:
            claims = [(m.due.step, m.claim) for m in sending]
            cids = [m.cid for m in sending]
            claimed = await self._store(stop, self._claim, cids, claims, loaded)
            if claimed is None:
                return False  # stopping: a claim perhaps stored becomes uncertain, never resent
            for message, attempt in zip(sending, claimed, strict=True):
                message.attempt = attempt
            sending = [m for m in sending if m.attempt is not None]  # no longer ours to send
        if sending:
            await asyncio.to_thread(self._send_all, sending)
            outcomes += sending
        if outcomes and await self._store(stop, self._record, outcomes, loaded) is None:
            return False
        self._count(outcomes)
        return True

    def _prepare(self, ready: list[uuid.UUID], loaded: Loaded) -> list[_Message]:
        """Load each ready correspondence once and compose its due messages on this channel,
        at most `per_round`; a correspondence with more is due again at once. Addresses are
        opened here, each customer's key looked up in the store once per round."""
        batch: list[_Message] = []
        fresh: set[str] = set()  # keys looked up in the store this round
        for cid in ready:
            # A look without a copy; only one with messages in the round is copied, to decide
            # its claims and outcomes on (one woken for a retry often has nothing due yet).
            with self.app.reading(cid) as correspondence:
                self.outbox.settle(correspondence)
                composed = len(batch)
                for due in correspondence.pending(channels=(self.channel.name,)):
                    if due.retry_at is not None and due.retry_at > self.clock():
                        self.outbox.wake(cid, due.retry_at)
                    elif len(batch) == self.per_round:
                        self.outbox.wake(cid, None)  # the rest next round
                        break
                    else:
                        batch.append(self._compose(correspondence, due, fresh))
                if len(batch) > composed:
                    loaded[cid] = deepcopy(correspondence)
        return batch

    def _compose(self, correspondence: Correspondence, due: Due, fresh: set[str]) -> _Message:
        message = _Message(correspondence.id, due, claim=uuid.uuid4().hex, attempt=due.attempts + 1)
        try:
            address = self._open_address(due, fresh)
        except SealedValueInvalid as error:
            log.error("%s/%s: address does not open: %s", due.step, self.channel.name, error)
            return self._fail(message, f"address: {error}")
        if address is None:
            log.info("%s/%s not sent: customer erased", due.step, self.channel.name)
            return self._fail(message, CUSTOMER_ERASED)
        try:
            message.outgoing = self.channel.compose(
                correspondence.refund_id, replace(due, address=address)
            )
        except Exception as error:  # a message that cannot be rendered must not hold the rest
            log.exception("cannot compose %s/%s", due.step, self.channel.name)
            return self._fail(message, f"template: {error}")
        return message

    def _open_address(self, due: Due, fresh: set[str]) -> str | None:
        """The plaintext address, in memory only; None when the customer was erased. Each key
        is asked of the store, not the cache, once per round (the round's messages leave right
        after): nothing leaves after an erasure has returned before the round began."""
        key_id = key_id_of(due.address)
        first = key_id not in fresh
        if key_id is not None:
            fresh.add(key_id)
        return self.app.keys.reveal(
            due.address, field=ADDRESS_FIELDS[self.channel.name], fresh=first
        )

    def _claim(
        self, cids: list[uuid.UUID], claims: list[tuple[str, str]], loaded: Loaded
    ) -> list[int | None]:
        """Claim the round's e-mails in one save (see `Messages.start_attempts`)."""
        return self.app.messages.start_attempts(cids, claims, self.channel.name, loaded)

    def _send_all(self, sending: list[_Message]) -> None:
        """Hand each message over, one after the other on the channel's kept-open connection;
        what happened to each becomes its outcome."""
        for message in sending:
            outgoing, attempt = message.outgoing, message.attempt
            assert outgoing is not None and attempt is not None
            due = message.due
            try:
                provider_id = self.channel.send(outgoing)
            except TryLater as error:
                self.health.report(self.part, False)
                if attempt >= self.attempts:
                    self._fail(message, f"{error} (gave up after {attempt} attempts)")
                    continue
                delay = self._delay(attempt, error.retry_after)
                log.warning("%s/%s attempt %d: %s", due.step, self.channel.name, attempt, error)
                message.kind = "retry"
                message.outcome = _retry(self.channel.name, due, str(error), delay, self.clock)
                continue
            except Undeliverable as error:
                log.error("%s/%s refused for good: %s", due.step, self.channel.name, error)
                self._fail(message, str(error))
                continue
            self.health.report(self.part, True)
            message.kind = "sent"
            message.outcome = _sent(self.channel.name, due, outgoing, provider_id, self.clock())

    def _delay(self, attempt: int, retry_after: float | None) -> timedelta:
        delay = self.backoff * (2 ** (attempt - 1))
        delay = min(delay, MAX_RETRY_DELAY) * (1 + self.rng.uniform(-JITTER, JITTER))
        if retry_after is not None and timedelta(seconds=retry_after) > delay:
            delay = min(timedelta(seconds=retry_after), MAX_RETRY_DELAY)
        return delay

    def _record(self, outcomes: list[_Message], loaded: Loaded) -> bool:
        """Every outcome of the round in one save (see `Messages.record_outcomes`)."""
        changes = [(m.cid, m.outcome) for m in outcomes if m.outcome is not None]
        self.app.messages.record_outcomes(changes, loaded)
        return True

    def _fail(self, message: _Message, cause: str) -> _Message:
        due, channel, at = message.due, self.channel.name, self.clock()
        message.kind = "failed"
        message.outcome = lambda c: c.record_failed(
            step=due.step, channel=channel, cause=cause, failed_at=at
        )
        return message

    def _count(self, outcomes: list[_Message]) -> None:
        for message in outcomes:
            if message.kind == "sent":
                self.sent += 1
            elif message.kind == "failed":
                self.failed += 1
            elif message.kind == "retry":
                self.retried += 1

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


def _sent(channel: str, due: Due, outgoing: Outgoing, provider_id: str, at: datetime) -> Decision:
    return lambda c: c.record_sent(
        step=due.step,
        channel=channel,
        message_id=provider_id,
        recipient_masked=outgoing.recipient_masked,
        locale=outgoing.locale,
        template=outgoing.template,
        sent_at=at,
    )


def _retry(
    channel: str, due: Due, error: str, delay: timedelta, clock: Callable[[], datetime]
) -> Decision:
    # The wait counts from when the failure is recorded, after the rest of the round was sent:
    # never sooner than the provider's Retry-After, counted from its answer.
    return lambda c: c.record_attempt_failed(
        step=due.step, channel=channel, error=error, retry_at=clock() + delay
    )


def _uncertain(step: str, channel: str) -> Decision:
    return lambda c: c.mark_uncertain(step, channel)
