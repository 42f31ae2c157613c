"""Payout's read model of settlement days: which payouts the provider settled on which day.

Reconciling one day's settlement file must compare every payout we recorded as settled
(`paid`/`failed`) at the provider that day. Scanning every payout ever requested for them
grows with history; this table, kept from payout's log like the payout list, answers
"settled on day D" from an index. One row per payout (public id, the day, where its
request is in the log, version): rows come out in the order the payouts were requested,
the order reconciliation always listed them in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from eventsourcing.persistence import Notification

from services.payout.domain import Payout
from services.payout.reconcile import settled_day
from shared.application import ServiceApplication
from shared.ids import parse_public_id, public_id
from shared.readmodel import ReadModel
from shared.store import create_tables


class SettledDays(ReadModel):
    """A payout's row: the day it settled at the provider (none yet: NULL) and the log
    position of its request (written once, with the payout's first row)."""

    name = "payout_settled_days"
    schema = (
        "payout_id TEXT PRIMARY KEY, settled_on TEXT, "
        # Nullable: a later version's row does not know it; the upsert keeps the first's.
        "requested_position BIGINT, version BIGINT NOT NULL"
    )
    columns = ("payout_id", "settled_on", "requested_position", "version")
    # Where the request is in the log never changes: it is written with the first row.
    changing = ("settled_on", "version")
    time_column = "requested_position"
    topic_marker = ":Payout."  # "services.payout.domain:Payout.Succeeded"

    def __init__(self, app: ServiceApplication) -> None:
        # Log positions of requests folded but not written yet (set in `_fold`, used by `row`).
        self._requested: dict[uuid.UUID, int] = {}
        super().__init__(app)
        create_tables(
            self._datastore,
            [f"CREATE INDEX IF NOT EXISTS {self.name}_by_day ON {self.table} (settled_on)"],
        )

    def _fold(self, notifications: Sequence[Notification]) -> list[Any]:
        # A payout's first event is its request: the row is first written in the same batch.
        for notification in notifications:
            if notification.originator_version == 1 and self.topic_marker in notification.topic:
                self._requested[uuid.UUID(str(notification.originator_id))] = notification.id
        return super()._fold(notifications)

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        payout: Payout = aggregate
        day = settled_day(payout)
        return (
            public_id("po", payout.id),
            day.isoformat() if day is not None else None,
            self._requested.pop(payout.id, None),
            payout.version,
        )

    def settled_on(self, day: date) -> list[uuid.UUID]:
        """The payouts settled at the provider on `day`, in the order they were requested."""
        found, _ = self.fetch({"settled_on": day.isoformat()})
        ids = [parse_public_id("po", str(row[0])) for row in reversed(found)]  # oldest first
        return [payout_id for payout_id in ids if payout_id is not None]
