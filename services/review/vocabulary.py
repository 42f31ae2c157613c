"""Review's words, each defined once: case states, outcomes, actions, liable parties.

Tiers are shared with the contracts: `shared.vocabulary`.

Standard library only, so that the pure assessment may import it as well as the
aggregates, the policy document and the API's bodies.
"""

from __future__ import annotations

from typing import Literal, get_args

CaseState = Literal[
    "pending", "awaiting_evidence", "approved", "rejected", "withdrawn", "compensated"
]
OPEN_STATES: frozenset[str] = frozenset({"pending", "awaiting_evidence"})

# What staff do to a case (the names a refusal records, and the API's actions).
StaffAction = Literal[
    "claim", "release", "approve", "reject", "request_evidence", "escalate", "compensate"
]

Outcome = Literal["approve", "reject", "manual"]  # what the policy concluded on a request
Decision = Literal["approved", "rejected"]  # how a case was decided, by rule or by people
Due = Literal["remind", "breach", "evidence_overdue"]  # what the SLA clock asks for

Party = Literal["merchant", "carrier"]  # who may owe the platform a share of a refund
LIABLE_PARTIES: tuple[Party, ...] = get_args(Party)
ClaimState = Literal["open", "recovered", "written_off"]
