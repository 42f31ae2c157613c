"""Notify's one event-sourced application: its store, and the features that share it.

Customer messages (`messages`) and platform webhooks (`webhooks`, `webhook_deliveries`) are
objects the application holds, not bases it inherits from; each reaction to an upstream event
is dispatched to them and stored with its tracking record in one transaction.
"""

from __future__ import annotations

from services.notify.messages.application import Messages, Processing
from services.notify.platform_keys import record_platform_key
from services.notify.webhooks.attempts import WebhookDeliveries
from services.notify.webhooks.commands import Webhooks
from shared.application import ServiceApplication
from shared.contracts import CloudEvent, IntegrationEvent
from shared.keystore import Keystore


class NotifyApplication(ServiceApplication):
    name = "Notify"
    # Set by the composition root (open_keystore): contacts, in-app texts and webhook secrets
    # are stored sealed under keys of their own.
    keystore: Keystore | None = None

    def __init__(self, env: dict[str, str] | None = None) -> None:
        super().__init__(env=env)
        self.messages = Messages(self, lambda: self.keys)
        self.webhooks = Webhooks(self, lambda: self.keys)
        self.webhook_deliveries = WebhookDeliveries(self.webhooks)

    @property
    def keys(self) -> Keystore:
        if self.keystore is None:
            raise RuntimeError("notify needs a keystore to seal and open (open_keystore)")
        return self.keystore

    def close(self) -> None:
        super().close()
        if self.keystore is not None:
            self.keystore.close()

    def react(self, payload: IntegrationEvent, message: CloudEvent, into: Processing) -> None:
        if record_platform_key(self, payload, into):
            return  # intake's keys are notify's own business: no message, no webhook
        self.webhook_deliveries.fan_out(message, into)
        self.messages.react(payload, message, into)
