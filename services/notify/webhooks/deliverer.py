"""The webhook deliverer: sends due deliveries to tenants' endpoints, signed, with retries.

Which deliveries are due is kept in memory, rebuilt from notify's own event log at start and
then followed, so there is no timer table. Each attempt is claimed before it is sent: the
deliverer stores `AttemptStarted`, then POSTs, then stores the outcome.

At most one webhook per (event, endpoint), deliberately: an attempt that was started but has no
outcome (the process died between claiming and recording) is never sent again automatically.
At start-up it is recorded as `uncertain` — visible in the delivery log — and the tenant may
redeliver it by hand (same `webhook-id`, so a receiver that did get it can tell). Receivers of
Standard Webhooks are told to dedupe on `webhook-id`, but we do not lean on that: a missing
webhook is visible and repairable, a duplicate may have been acted on.

Run one deliverer per service at a time (like the relay and the e-mail sender): two would each
mark the other's attempts in flight as uncertain at start-up.

A deliverer connects to an address it vetted itself (`safety.safe_addresses`, right before the
attempt), with TLS still verified against the URL's host name, so a DNS answer that changes
between the check and the connection cannot redirect a delivery to an internal address.
Redirects are not followed; response bodies are kept only as `retries.excerpt()`.

Deliveries that come due while their endpoint is disabled or deleted are failed ("cancelled",
with the reason); after re-enabling, the tenant redelivers the ones it wants.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from services.notify.application import NotifyApplication
from services.notify.follow import read_after, stored_topics
from services.notify.messages.mailer import Mailer, new_message
from services.notify.settings import NotifySettings
from services.notify.webhooks import deliveries, endpoints
from services.notify.webhooks.attempts import Claim
from services.notify.webhooks.commands import endpoint_public_id
from services.notify.webhooks.deliveries import AttemptResult, WebhookDelivery
from services.notify.webhooks.endpoints import WebhookEndpoint
from services.notify.webhooks.retries import excerpt, is_gone, next_attempt_delay
from services.notify.webhooks.retries import parse_retry_after as retry_after_of
from services.notify.webhooks.safety import IPAddress, UnsafeUrl, safe_addresses
from services.notify.webhooks.signing import headers
from shared.aio import sleep_or_stop
from shared.checkpoints import CheckpointedFold
from shared.follower import Pacing
from shared.health import Health

log = logging.getLogger(__name__)

D: Any = WebhookDelivery
E: Any = WebhookEndpoint
DELIVERY_EVENTS = (
    D.Scheduled,
    D.AttemptStarted,
    D.AttemptSucceeded,
    D.AttemptFailed,
    D.MarkedUncertain,
    D.Cancelled,
    D.RedeliveryRequested,
)
ENDPOINT_EVENTS = (E.Changed, E.Disabled, E.Enabled, E.AlertSent, E.Deleted)
TOPICS = stored_topics(
    DELIVERY_EVENTS + ENDPOINT_EVENTS, {**deliveries.EARLIER_TOPICS, **endpoints.EARLIER_TOPICS}
)
BATCH = 500
WANTED = frozenset(TOPICS).__contains__  # the appends that wake the deliverer
READ_LIMIT = 4096  # response bytes read at most; only an excerpt of them is kept
USER_AGENT = "refunds-webhooks/1"
ALERT_RETRY_SECONDS = 30.0
CHECKPOINT_SECONDS = 2.0  # the longest stretch of the log a start may have to read again
T = TypeVar("T")


class DueSchedule(CheckpointedFold):
    """When each pending delivery is next due, which attempts are in flight, and which
    endpoints may owe their tenant an alert — all read from the log: from a checkpoint saved
    every few seconds (`shared.checkpoints.CheckpointedFold`: the position, and only what is
    still pending then), and the log after it, so a start does not read the whole webhook
    history."""

    app: NotifyApplication
    checkpoint_seconds = CHECKPOINT_SECONDS

    def __init__(self, app: NotifyApplication) -> None:
        super().__init__(app, "webhook_schedule")
        self.due: dict[uuid.UUID, datetime] = {}
        self.started: set[uuid.UUID] = set()  # attempt claimed, no outcome logged yet
        self.alerts: set[uuid.UUID] = set()
        # What the log alone says of `started` and `alerts`, which the deliverer changes as
        # it settles orphans and sends alerts: that is what a checkpoint keeps.
        self._logged_started: set[uuid.UUID] = set()
        self._logged_alerts: set[uuid.UUID] = set()

    def catch_up(self) -> int:
        """Apply what was logged since the last look; how many of its events were read."""
        self.restore_once()
        read = 0
        while True:
            notifications, position = read_after(
                self.app, self.position, topics=TOPICS, limit=BATCH
            )
            for notification in notifications:
                self._apply(self.app.mapper.to_domain_event(notification))
            self.position = position
            read += len(notifications)
            if len(notifications) < BATCH:
                break
        self.save_now_and_then()
        return read

    def restore(self, key: uuid.UUID, entry: str) -> None:
        kept = json.loads(entry)
        if kept["due"] is not None:
            self.due[key] = datetime.fromisoformat(kept["due"])
        if kept["started"]:
            self._logged_started.add(key)
            self.started.add(key)
        if kept["alert"]:
            self._logged_alerts.add(key)
            self.alerts.add(key)

    def entry(self, key: uuid.UUID) -> str | None:
        due = self.due.get(key)
        started, alert = key in self._logged_started, key in self._logged_alerts
        if due is None and not started and not alert:
            return None
        return json.dumps(
            {"due": None if due is None else due.isoformat(), "started": started, "alert": alert}
        )

    def _apply(self, logged: Any) -> None:
        uid = logged.originator_id
        self.changed(uid)
        if isinstance(logged, D.Scheduled | D.RedeliveryRequested):
            self.due[uid] = logged.at
        elif isinstance(logged, D.AttemptStarted):
            self.due.pop(uid, None)
            self.started.add(uid)
            self._logged_started.add(uid)
        elif isinstance(logged, D.AttemptFailed) and logged.next_attempt_at is not None:
            self.started.discard(uid)
            self._logged_started.discard(uid)
            self.due[uid] = logged.next_attempt_at
        elif isinstance(logged, DELIVERY_EVENTS):
            self.started.discard(uid)
            self._logged_started.discard(uid)
            self.due.pop(uid, None)
        elif isinstance(logged, E.Changed | E.Disabled):
            self.alerts.add(uid)
            self._logged_alerts.add(uid)
        else:
            self.alerts.discard(uid)
            self._logged_alerts.discard(uid)

    def next_due(self) -> datetime | None:
        return min(self.due.values(), default=None)


def pinned(url: str, address: IPAddress) -> tuple[str, dict[str, str], dict[str, Any]]:
    """`url` aimed at `address`, with the Host header and TLS server name of the original host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    original = f"[{host}]" if ":" in host else host
    host_header = original if parts.port is None else f"{original}:{parts.port}"
    extensions: dict[str, Any] = {}
    if parts.scheme.lower() == "https":
        extensions["sni_hostname"] = host
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return target, {"host": host_header}, extensions


class Deliverer:
    """Sends due webhook deliveries, at most `webhook_concurrency` at a time."""

    min_backoff = 0.1
    max_backoff = 5.0

    def __init__(
        self,
        app: NotifyApplication,
        settings: NotifySettings,
        mailer: Mailer,
        *,
        health: Health | None = None,
        rng: random.Random | None = None,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.app = app
        self.settings = settings
        self.mailer = mailer
        self.health = health or Health()
        self.rng = rng or random.Random()
        self.verify = verify  # TLS trust; tests pass a context that trusts their own CA
        self.schedule_steps = settings.webhook_schedule
        self.timeout = settings.webhook_timeout_ms / 1000
        self.disable_after = timedelta(seconds=settings.webhook_disable_after_s)
        self.poll = settings.poll_interval_ms / 1000
        # Until this process appends a webhook event or a delivery falls due, and a busy log
        # at most every `poll` seconds, so that it is read in batches.
        self._pacing = Pacing(self.poll)
        self.in_flight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.alert_retry_at: dict[uuid.UUID, float] = {}
        self.sent = 0  # requests made (whatever their answer)
        self.marked_uncertain = 0

    async def run(self, stop: asyncio.Event) -> None:
        backoff = self.min_backoff
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                    backoff = self.min_backoff
                except Exception:  # store faults and bugs alike: report, back off, resume
                    log.exception("webhook deliverer failed; resuming in %.1fs", backoff)
                    self.health.report("deliverer", False)
                    await sleep_or_stop(stop, backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            # Stopping: let the requests in flight finish and record their outcomes.
            if self.in_flight:
                await asyncio.wait(list(self.in_flight.values()), timeout=self.timeout + 5)
        finally:
            for task in self.in_flight.values():
                task.cancel()

    async def _session(self, stop: asyncio.Event) -> None:
        schedule = DueSchedule(self.app)
        await asyncio.to_thread(schedule.catch_up)
        await self._settle_orphans(schedule)
        limits = httpx.Limits(max_connections=self.settings.webhook_concurrency)
        async with httpx.AsyncClient(
            timeout=self.timeout,
            follow_redirects=False,
            limits=limits,
            trust_env=False,
            verify=self.verify,
        ) as client:
            while not stop.is_set():
                rings = self.app.appended.rings
                read = await asyncio.to_thread(schedule.catch_up)
                await self._settle_orphans(schedule)
                looked = time.monotonic()
                self.health.report("deliverer", True)
                await self._send_alerts(schedule)
                self._dispatch(schedule, client)
                self._pacing.looked(found=bool(read))
                bell, due_in = self.app.appended, self._due_in(schedule)
                await self._pacing.pause(bell, rings, stop, looked, WANTED, due_in=due_in)

    async def _settle_orphans(self, schedule: DueSchedule) -> None:
        """Attempts claimed with no sender left to record their outcome are never resent: a
        deliverer that died before recording it, or, in this process, an attempt whose claim
        committed although the store's answer was lost (a connection cut mid-commit). The
        delivery itself decides: one whose outcome is recorded after all is left as it is."""
        for delivery_id in sorted(schedule.started - set(self.in_flight)):
            schedule.started.discard(delivery_id)  # settled now, or by its recorded outcome
            if await asyncio.to_thread(self.app.webhook_deliveries.mark_uncertain, delivery_id):
                self.marked_uncertain += 1
                log.warning("webhook delivery %s: outcome unknown, marked uncertain", delivery_id)

    def _dispatch(self, schedule: DueSchedule, client: httpx.AsyncClient) -> None:
        now = datetime.now(UTC)
        due = sorted((at, uid) for uid, at in schedule.due.items() if at <= now)
        for _, delivery_id in due:
            if len(self.in_flight) >= self.settings.webhook_concurrency:
                return
            if delivery_id in self.in_flight:
                continue
            task = asyncio.create_task(self._attempt(delivery_id, client, schedule))
            self.in_flight[delivery_id] = task
            task.add_done_callback(self._finished(delivery_id))

    def _finished(self, delivery_id: uuid.UUID) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self.in_flight.pop(delivery_id, None)

        return forget

    def _due_in(self, schedule: DueSchedule) -> float | None:
        upcoming = schedule.next_due()
        return None if upcoming is None else (upcoming - datetime.now(UTC)).total_seconds()

    async def _attempt(
        self, delivery_id: uuid.UUID, client: httpx.AsyncClient, schedule: DueSchedule
    ) -> None:
        try:
            claim = await asyncio.to_thread(self.app.webhook_deliveries.claim_attempt, delivery_id)
            if claim is None:
                return
            result, retry_after = await self._post(client, claim)
            gone = result.status_code is not None and is_gone(result.status_code)
            retry_in = (
                None
                if gone
                else next_attempt_delay(
                    claim.round_attempts, self.rng, retry_after, self.schedule_steps
                )
            )
            settlement = await self._until_stored(
                lambda: self.app.webhook_deliveries.settle_attempt(
                    claim, result, retry_in=retry_in, disable_after=self.disable_after
                )
            )
            if settlement.endpoint_disabled:
                log.warning(
                    "webhook endpoint %s disabled (%s)",
                    endpoint_public_id(claim.endpoint_id),
                    settlement.endpoint_disabled,
                )
            if settlement.alert_due:
                schedule.alerts.add(claim.endpoint_id)
        except Exception:
            log.exception("webhook delivery %s: attempt failed unexpectedly", delivery_id)

    async def _post(
        self, client: httpx.AsyncClient, claim: Claim
    ) -> tuple[AttemptResult, float | None]:
        allow = self.app.webhooks.allow_private
        started = time.perf_counter()

        def took() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            addresses = await asyncio.to_thread(
                safe_addresses, claim.url, allow_private=allow, resolve=self.app.webhooks.resolve
            )
        except UnsafeUrl as unsafe:
            return AttemptResult(None, took(), f"unsafe URL: {unsafe.reason}"), None
        target, host, extensions = pinned(claim.url, addresses[0])
        signed = headers(claim.msg_id, int(time.time()), claim.body, claim.secrets)
        sent_headers = {
            **signed,
            **host,
            "content-type": "application/cloudevents+json",
            "user-agent": USER_AGENT,
        }
        self.sent += 1
        try:
            async with asyncio.timeout(self.timeout):
                async with client.stream(
                    "POST", target, content=claim.body, headers=sent_headers, extensions=extensions
                ) as response:
                    raw = b""
                    async for chunk in response.aiter_bytes():
                        raw += chunk
                        if len(raw) >= READ_LIMIT:
                            break
        except TimeoutError:
            return AttemptResult(None, took(), f"timed out after {self.timeout:g}s"), None
        except httpx.HTTPError as error:
            return AttemptResult(None, took(), f"{type(error).__name__}: {error}"[:300]), None
        status = response.status_code
        failed = None if 200 <= status < 300 else f"HTTP {status}"
        retry_after = retry_after_of(response.headers.get("retry-after"), datetime.now(UTC))
        return AttemptResult(status, took(), failed, excerpt(raw)), retry_after

    async def _until_stored(self, store: Callable[[], T]) -> T:
        """Store an outcome, however long the store is away: the request already went out,
        and giving up here would leave it for the next start-up to call uncertain."""
        backoff = self.min_backoff
        while True:
            try:
                return await asyncio.to_thread(store)
            except Exception as error:
                log.warning("storing a webhook outcome failed (%s); retrying", error)
                self.health.report("deliverer", False)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    # --- alerts ---------------------------------------------------------------------------------

    async def _send_alerts(self, schedule: DueSchedule) -> None:
        now = time.monotonic()
        for endpoint_id in sorted(schedule.alerts):
            if self.alert_retry_at.get(endpoint_id, 0.0) > now:
                continue
            try:
                await self._alert(endpoint_id)
            except Exception as error:  # the mail server may be away: try again later
                log.warning("alert for %s not sent (%s); retrying", endpoint_id, error)
                self.alert_retry_at[endpoint_id] = now + ALERT_RETRY_SECONDS
                continue
            self.alert_retry_at.pop(endpoint_id, None)
            schedule.alerts.discard(endpoint_id)

    async def _alert(self, endpoint_id: uuid.UUID) -> None:
        """Tell the tenant, once, that its endpoint was disabled for failing.

        Sent, then recorded: a crash in between repeats the e-mail under the same Message-ID
        (as the customer e-mails do) rather than risk never telling the tenant."""
        endpoint = await asyncio.to_thread(self.app.webhooks.endpoint, endpoint_id)
        if not endpoint.alert_due:
            return
        await asyncio.to_thread(self.mailer.send, self._alert_message(endpoint))
        await asyncio.to_thread(self.app.webhook_deliveries.record_alert_sent, endpoint_id)

    def _alert_message(self, endpoint: WebhookEndpoint) -> EmailMessage:
        public = endpoint_public_id(endpoint.id)
        since = endpoint.failing_since.isoformat() if endpoint.failing_since else "—"
        message = new_message()
        message["From"] = self.settings.mail_from
        message["To"] = endpoint.alert_email
        message["Subject"] = f"Webhook endpoint disabled: {endpoint.url}"
        message["Date"] = format_datetime(datetime.now(UTC))
        stamp = int(endpoint.disabled_at.timestamp()) if endpoint.disabled_at else 0
        message["Message-ID"] = f"<{public}.disabled.{stamp}@refunds.local>"
        message["X-Webhook-Endpoint"] = public
        message.set_content(
            f"Your webhook endpoint {public} ({endpoint.url}) has failed every delivery since "
            f"{since} and has been disabled.\n\n"
            "Events are no longer sent to it. Fix the receiver, then re-enable the endpoint with "
            f'POST /v1/webhook_endpoints/{public} {{"enabled": true}} and redeliver what you '
            "need from its delivery log.\n",
            charset="utf-8",
        )
        return message
