"""A tenant's merchant account at a payment provider, as payout records it.

The credentials are sealed in the keystore before they are stored (subject: the tenant and
the provider), so neither an event nor a log line ever holds them in clear; what staff may
read — account ids, key fingerprints, the last characters of a secret — is the `summary`.
Removing an account erases its keystore key: every sealed copy, of every configuration the
account ever had, becomes unreadable at once.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from shared.ids import derived_id
from shared.quick_copy import QuickCopy


def keystore_subject(tenant: str, provider: str) -> tuple[str, str]:
    """Whose key seals the account's credentials."""
    return tenant, f"provider-account:{provider}"


SEALED_FIELD = "provider_account.credentials"  # the field the sealed value is bound to


class ProviderAccount(QuickCopy, Aggregate, created_event_name="Configured"):
    """One tenant's account at one provider: configured, reconfigured (rotated), removed."""

    @staticmethod
    def create_id(tenant: str, provider: str) -> uuid.UUID:
        return derived_id("provider-account", tenant, provider)

    def __init__(
        self,
        *,
        tenant: str,
        provider: str,
        methods: list[str],
        sealed: str,
        summary: dict[str, Any],
        actor: str,
        at: datetime,
    ) -> None:
        self.tenant = tenant
        self.provider = provider
        self.methods = list(methods)
        self.sealed: str | None = sealed
        self.summary = dict(summary)
        self.configured_by = actor
        self.configured_at = at
        self.removed_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.sealed is not None

    @event("Reconfigured")
    def reconfigure(
        self, methods: list[str], sealed: str, summary: dict[str, Any], actor: str, at: datetime
    ) -> None:
        self.methods = list(methods)
        self.sealed = sealed
        self.summary = dict(summary)
        self.configured_by = actor
        self.configured_at = at
        self.removed_at = None

    @event("Removed")
    def remove(self, actor: str, at: datetime) -> None:
        self.sealed = None
        self.configured_by = actor
        self.removed_at = at
