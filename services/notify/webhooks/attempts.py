"""Platform webhooks, the deliveries' side: fan-out of consumed events, and the deliverer's
claims and outcomes (with their effect on the endpoint and its tenant's other endpoints).

The fan-out runs inside the application's reaction, so its deliveries are stored in the same
transaction as the consumer's tracking record: a Kafka message seen twice creates no second
delivery, and a delivery's id derives from (endpoint, CloudEvent id), so neither does the same
event re-published under a new position.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from eventsourcing.application import ProcessingEvent
from eventsourcing.persistence import IntegrityError

from services.notify.webhooks.commands import Webhooks, delivery_public_id, endpoint_public_id
from services.notify.webhooks.deliveries import AttemptResult, DeliveryState, WebhookDelivery
from services.notify.webhooks.endpoints import EndpointDirectory, WebhookEndpoint
from services.notify.webhooks.operational import (
    OFFERED,
    WebhookEndpointDisabledV1,
    cloud_event,
    disabled_event_id,
)
from services.notify.webhooks.retries import is_gone
from shared.contracts import CloudEvent

T = TypeVar("T")


@dataclass(frozen=True)
class Claim:
    """An attempt the deliverer has claimed: everything it needs to send it."""

    delivery_id: uuid.UUID
    endpoint_id: uuid.UUID
    n: int
    round_attempts: int  # attempts made in this round, this one included
    msg_id: str
    url: str
    secrets: list[str]
    body: bytes


@dataclass(frozen=True)
class Settlement:
    """What recording an attempt's outcome decided."""

    state: DeliveryState
    endpoint_disabled: str | None  # the reason, when this outcome disabled the endpoint
    alert_due: bool


class WebhookDeliveries:
    """Deliveries in notify's store: scheduled by the fan-out, attempted by the deliverer."""

    def __init__(self, webhooks: Webhooks) -> None:
        self.webhooks = webhooks  # the endpoints, their directories and secrets
        self.app = webhooks.app

    def fan_out(self, message: CloudEvent, processing: ProcessingEvent[uuid.UUID]) -> None:
        """Schedule one delivery per enabled endpoint of the tenant subscribed to the type."""
        if message.type not in OFFERED:  # intake's platform-key events are notify's own
            return
        directory = self.webhooks.directory(message.tenant)
        if directory is None:
            return
        now = self.app.clock()
        body = message.to_bytes().decode()
        for endpoint_id in directory.subscribers(message.type):
            if self.webhooks.exists(WebhookDelivery.create_id(endpoint_id, message.id)):
                continue
            delivery = WebhookDelivery(
                tenant=message.tenant,
                endpoint_id=endpoint_id,
                event_id=message.id,
                event_type=message.type,
                refund_id=message.subject,
                body=body,
                at=now,
            )
            processing.collect_events(delivery)

    def claim_attempt(self, delivery_id: uuid.UUID) -> Claim | None:
        """Store `AttemptStarted` for a due delivery and return what to send; None when it is
        not due (any more). A delivery to a disabled or deleted endpoint is cancelled instead."""

        def decide(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Claim | None:
            now = self.app.clock()
            if not delivery.is_due(now):
                return None
            if not endpoint.enabled:
                reason = "deleted" if endpoint.deleted else endpoint.disabled_reason
                delivery.cancel(at=now, reason=f"endpoint {reason}")
                return None
            n = delivery.start_attempt(at=now)
            return Claim(
                delivery_id=delivery.id,
                endpoint_id=endpoint.id,
                n=n,
                round_attempts=delivery.round_attempts,
                msg_id=delivery_public_id(delivery.id),
                url=endpoint.url,
                secrets=self.webhooks.secrets.live(endpoint, now),
                body=delivery.body.encode(),
            )

        return self._decide(delivery_id, decide)

    def settle_attempt(
        self,
        claim: Claim,
        result: AttemptResult,
        *,
        retry_in: float | None,
        disable_after: timedelta,
    ) -> Settlement:
        """Store an attempt's outcome with its effect on the endpoint (and its directory):
        2xx delivers; 410 gives up and disables the endpoint ("gone"); anything else retries
        in `retry_in` seconds (None: gives up) and may disable it ("failing")."""

        def decide(delivery: WebhookDelivery, endpoint: WebhookEndpoint) -> Settlement:
            if delivery.settled(claim.n):
                # Stored already (a retry after the store's answer was lost), or settled as
                # uncertain meanwhile: the log keeps what it has.
                return Settlement(delivery.state, None, endpoint.alert_due)
            now = self.app.clock()
            was = endpoint.disabled_reason
            status = result.status_code
            if status is not None and 200 <= status < 300:
                delivery.succeed(n=claim.n, at=now, result=result)
                endpoint.record_success(at=now)
            elif status is not None and is_gone(status):
                delivery.fail(n=claim.n, at=now, result=result, retry_in=None)
                endpoint.record_gone(at=now)
            else:
                delivery.fail(n=claim.n, at=now, result=result, retry_in=retry_in)
                endpoint.record_failure(at=now, disable_after=disable_after)
            disabled = endpoint.disabled_reason if was is None else None
            return Settlement(delivery.state, disabled, endpoint.alert_due)

        return self._decide(claim.delivery_id, decide)

    def mark_uncertain(self, delivery_id: uuid.UUID) -> bool:
        """Settle an attempt whose sender died as `uncertain`; False when none is in flight."""

        def change(delivery: WebhookDelivery) -> bool:
            if not delivery.in_flight:
                return False
            delivery.mark_uncertain(at=self.app.clock())
            return True

        return self._change([delivery_id], lambda found: change(found[0]))

    def record_alert_sent(self, endpoint_id: uuid.UUID) -> None:
        self._change([endpoint_id], lambda found: found[0].record_alert_sent(at=self.app.clock()))

    def _decide(
        self,
        delivery_id: uuid.UUID,
        decide: Callable[[WebhookDelivery, WebhookEndpoint], T],
    ) -> T:
        """Decide on a delivery with its endpoint; save them and the endpoint's directory
        together, so a disabled endpoint and its directory entry never disagree."""

        def change(found: list[Any]) -> T:
            delivery = cast(WebhookDelivery, found[0])
            endpoint = self.webhooks.endpoint(delivery.endpoint_id)
            enabled = endpoint.enabled
            result = decide(delivery, endpoint)
            found.append(endpoint)
            directory = self.webhooks.directory(endpoint.tenant)
            if directory is not None:
                directory.sync(endpoint)
                found.append(directory)
                if enabled and not endpoint.enabled:  # disabled by us: tell the others
                    found.extend(self._disabled_notices(directory, endpoint))
            return result

        return self._change([delivery_id], change)

    def _disabled_notices(
        self, directory: EndpointDirectory, endpoint: WebhookEndpoint
    ) -> list[WebhookDelivery]:
        """`webhook.endpoint_disabled.v1` for each other enabled endpoint of the tenant that
        subscribes to it, stored with the disabling itself."""
        assert endpoint.disabled_at is not None and endpoint.disabled_reason is not None
        notice = WebhookEndpointDisabledV1(
            endpoint_id=endpoint_public_id(endpoint.id),
            url=endpoint.url,
            reason=cast(Any, endpoint.disabled_reason),
            failing_since=endpoint.failing_since,
            disabled_at=endpoint.disabled_at,
        )
        event_id = disabled_event_id(endpoint.id, endpoint.disabled_at)
        now = self.app.clock()
        body = cloud_event(notice, tenant=endpoint.tenant, event_id=event_id, at=now)
        return [
            WebhookDelivery(
                tenant=endpoint.tenant,
                endpoint_id=other,
                event_id=event_id,
                event_type=notice.TYPE,
                refund_id="",  # about no refund
                body=body,
                at=now,
            )
            for other in directory.subscribers(notice.TYPE)
            if other != endpoint.id
        ]

    def _change(self, ids: list[uuid.UUID], change: Callable[[list[Any]], T]) -> T:
        """Load, decide, save in one transaction; on a concurrent write, redo on fresh state.
        `change` may append further aggregates it loaded and changed."""
        for _ in range(self.app.max_conflict_retries):
            found: list[Any] = [self.app.repository.get(uid) for uid in ids]
            result = change(found)
            try:
                self.app.save(*found)
            except IntegrityError:
                continue
            return result
        raise RuntimeError(f"could not update {ids}: persistent conflict")
