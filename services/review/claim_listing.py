"""Finance's list of recovery claims across cases: a read model of RecoveryClaims, built from
review's event log and rebuilt at will (like the warehouse's list, returns/listing.py).

One row per claim: its id, refund, liable party, state, when the approval opened it, and the
version; listed newest first, filtered by state, paged by Stripe's cursors on the claim id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.review.recovery import RecoveryClaim
from shared.paging import Page
from shared.readmodel import ReadModel, sortable

CLAIM_EVENTS = ":RecoveryClaim."


@dataclass(frozen=True)
class ClaimFilter:
    state: str | None = None
    party: str | None = None


class ClaimLedger(ReadModel):
    name = "review_claims"
    schema = (
        "claim_id TEXT PRIMARY KEY, refund_id TEXT NOT NULL, party TEXT NOT NULL, "
        "state TEXT NOT NULL, opened_at TEXT NOT NULL, version BIGINT NOT NULL"
    )
    columns = ("claim_id", "refund_id", "party", "state", "opened_at", "version")
    changing = ("state", "version")
    time_column = "opened_at"
    topic_marker = CLAIM_EVENTS

    def row(self, aggregate: Any) -> tuple[Any, ...]:
        claim: RecoveryClaim = aggregate
        opened: datetime = claim.at
        return (
            str(claim.id),
            claim.refund_id,
            claim.party,
            claim.state,
            sortable(opened),
            claim.version,
        )

    def page(self, where: ClaimFilter, page: Page) -> tuple[list[uuid.UUID], bool]:
        """The ids of one page of claims, newest first; raises UnknownCursor."""
        found, has_more = self.fetch(
            {"state": where.state, "party": where.party},
            limit=page.limit,
            starting_after=page.starting_after,
            ending_before=page.ending_before,
        )
        return [uuid.UUID(str(values[0])) for values in found], has_more
