"""How review shows staff a case, a queue row, a recovery claim and a policy version."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.review.application import ReviewApplication
from services.review.domain import ReviewCase
from services.review.duties import still_needed
from services.review.queue import QueueRow
from services.review.recovery import RecoveryClaim
from services.review.schemas import (
    AssessmentView,
    CaseView,
    ClaimView,
    PolicyVersionView,
    QueueEntry,
)
from shared.contracts import SEALED_EVIDENCE_DESCRIPTION, SEALED_STATEMENT
from shared.keystore import Keystore
from shared.money import Money

ASSESSMENT_FIELDS = tuple(AssessmentView.model_fields)


def plain(value: Any) -> Any:
    """Money as {amount, currency}, inside any dicts and lists."""
    if isinstance(value, Money):
        return {"amount": value.amount, "currency": value.currency}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def is_overdue(state: str, deadline: datetime | None, now: datetime) -> bool:
    return state == "pending" and deadline is not None and deadline < now


def opened(keystore: Keystore | None, value: Any, field: str) -> Any:
    """A sealed text of the customer as staff read it: plaintext, or `[erased]`."""
    if keystore is None or not isinstance(value, str):
        return value
    return keystore.show(value, field=field)


def _opened_in(
    entries: list[dict[str, Any]], key: str, field: str, keystore: Keystore | None
) -> list[dict[str, Any]]:
    """`entries` with the sealed text under `key`, where there is one, opened for staff."""
    return [{**e, key: opened(keystore, e[key], field)} if key in e else e for e in entries]


def case_view(
    case: ReviewCase,
    claims: list[RecoveryClaim],
    now: datetime,
    keystore: Keystore | None = None,
) -> CaseView:
    """The case for staff; the customer's texts (evidence descriptions, appeal statements) are
    stored sealed and opened here with `keystore` (none: shown as stored)."""
    assessment = case.assessment
    return CaseView.model_validate(
        {
            **plain(
                {
                    "refund_id": case.refund_id,
                    "tenant": case.tenant,
                    "order_id": case.order_id,
                    "customer_id": case.customer_id,
                    "reason": case.reason,
                    "requested": case.requested,
                    "refundable": case.refundable,
                    "tier": case.tier,
                    "state": case.state,
                    "round": case.round,
                    "needs": {"senior": False, "finance": False, **case.needs},
                    "approvals": case.approvals,
                    "missing_approvals": case.missing_approvals(),
                    "still_needed": still_needed(case.needs, case.approvals),
                    "excluded": case.excluded,
                    "assignee": case.assignee,
                    "deadline": case.deadline,
                    "overdue": is_overdue(case.state, case.deadline, now),
                    "policy_version": case.policy_version,
                    "rule": assessment["rule"],
                    "assessment": {key: assessment[key] for key in ASSESSMENT_FIELDS},
                    "evidence": _opened_in(
                        case.evidence, "description", SEALED_EVIDENCE_DESCRIPTION, keystore
                    ),
                    "evidence_requests": case.evidence_requests,
                    "decision": case.decision,
                    "decisions": case.decisions,
                    "compensation": case.compensation,
                    "history": _opened_in(case.history, "statement", SEALED_STATEMENT, keystore),
                    "version": case.version,
                }
            ),
            "claims": [claim_view(claim) for claim in claims],
        }
    )


def shown_case(app: ReviewApplication, case: ReviewCase, *, as_opened: bool = False) -> CaseView:
    """The case as staff see it, with its recovery claims (`as_opened`: as the approval
    first answered them, for a replay). Reads the store and the keystore: call it off the
    event loop."""
    return case_view(case, app.claims_of(case, as_opened=as_opened), app.now(), app.keystore)


def claim_view(claim: RecoveryClaim) -> ClaimView:
    return ClaimView.model_validate(
        plain(
            {
                "id": str(claim.id),
                "refund_id": claim.refund_id,
                "tenant": claim.tenant,
                "order_id": claim.order_id,
                "party": claim.party,
                "amount": claim.amount,
                "state": claim.state,
                "settlement": claim.settlement,
                "version": claim.version,
            }
        )
    )


def queue_entry(row: QueueRow, now: datetime) -> QueueEntry:
    return QueueEntry.model_validate(
        {
            "refund_id": row.refund_id,
            "tenant": row.tenant,
            "state": row.state,
            "tier": row.tier,
            "assignee": row.assignee,
            "deadline": row.deadline,
            "overdue": row.overdue(now),
            "opened_at": row.opened_at,
            "reason": row.reason,
            "requested": {"amount": row.amount, "currency": row.currency},
        }
    )


def version_view(entry: dict[str, Any], current: str | None) -> PolicyVersionView:
    return PolicyVersionView(
        version=entry["version"],
        digest=entry["digest"],
        by=entry["by"],
        at=entry["at"],
        current=entry["version"] == current,
    )
