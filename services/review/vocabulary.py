"""Review's words, each defined once: case states, outcomes, actions, liable parties.

Tiers are shared with the contracts: `shared.vocabulary`.

Standard library only, so that the pure assessment may import it as well as the
aggregates, the policy document and the API's bodies.
"""

from __future__ import annotations

from typing import Literal, get_args

# What a warehouse finds when it inspects a returned item (shared: the contracts carry it).
from shared.vocabulary import InspectionCondition as InspectionCondition

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
APPEAL = "appeal"  # why a case reopened on appeal was escalated (published as its reason)

Party = Literal["merchant", "carrier"]  # who may owe the platform a share of a refund
LIABLE_PARTIES: tuple[Party, ...] = get_args(Party)
ClaimState = Literal["open", "recovered", "written_off"]

# Rule ids of return decisions that exist whatever the policy document says.
NO_RETURN_SECTION = "return.not_configured"  # the policy has no `returns:` section: refund only
WRONG_ITEM = "return.inspection.wrong_item"  # the goods received are not the goods sold
HEAVY_DAMAGE = "return.inspection.heavy_damage"  # too damaged for a deduction by rule
NO_DEDUCTION_RULE = "return.inspection.no_rule"  # damaged or incomplete, and no rule says how much
INSPECTION_RULE_IDS = frozenset({WRONG_ITEM, HEAVY_DAMAGE, NO_DEDUCTION_RULE})

# In a policy document, a list holding it matches every value (every category, reason…).
ANY = "*"
