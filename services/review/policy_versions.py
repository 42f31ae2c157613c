"""Every version of the refund policy, kept as events: what was in force, when, and who said so.

The service starts from the shipped default (recorded as the first version);
an admin publishes a new version through the API; decisions record the version
they used, so any decision can be re-checked against the exact rules.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import register_topic

from shared.ids import derived_id
from shared.quick_copy import QuickCopy


class VersionExists(Exception):
    """A policy version is published once; a change needs a new version."""


class PolicyBook(QuickCopy, Aggregate):
    """Every published version of the policy, oldest first; the last one is in force."""

    @staticmethod
    def create_id() -> uuid.UUID:
        return derived_id("policy-book")

    @event("Started")
    def __init__(self) -> None:
        self.versions: list[dict[str, Any]] = []

    @property
    def current(self) -> dict[str, Any] | None:
        return self.versions[-1] if self.versions else None

    def publish(
        self, *, version: str, digest: str, document: dict[str, Any], by: str, at: datetime
    ) -> None:
        if any(v["version"] == version for v in self.versions):
            raise VersionExists(version)
        self._published(version, digest, document, by, at)

    @event("Published")
    def _published(
        self, version: str, digest: str, document: dict[str, Any], by: str, at: datetime
    ) -> None:
        self.versions.append(
            {"version": version, "digest": digest, "document": document, "by": by, "at": at}
        )


# Stored before this module had its name: those events keep their topic, and still load.
register_topic("services.review.policies:PolicyBook", PolicyBook)
