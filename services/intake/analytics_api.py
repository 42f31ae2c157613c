"""Intake's analytics route for auditors and admins: `GET /v1/analytics/refunds`."""

# No `from __future__ import annotations`: FastAPI resolves the dependency aliases at runtime.

import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, Field

from services.intake.analytics import (
    AnalyticsQuery,
    Deciders,
    Durations,
    Group,
    Report,
    SlaBreaches,
    analyse,
)
from services.intake.deps import Analyst, Facts, ReturnFactsModel
from services.intake.return_analytics import ReturnReport, analyse_returns
from shared.contracts import MoneyModel
from shared.paging import bad_query
from shared.schemas import example
from shared.staff import staff_problem_responses

CNY = [{"amount": 25800, "currency": "CNY"}]


def amounts(total: Counter[str]) -> list[MoneyModel]:
    return [MoneyModel(amount=total[c], currency=c) for c in sorted(total)]


class GroupView(BaseModel):
    count: int = Field(description="refunds in this group", examples=[2])
    requested: list[MoneyModel] = Field(
        description="amounts asked for, one entry per currency (minor units)", examples=[CNY]
    )

    @classmethod
    def of(cls, group: Group) -> "GroupView":
        return cls(count=group.count, requested=amounts(group.requested))


class DurationView(BaseModel):
    count: int = Field(description="refunds that went through this stage", examples=[2])
    p50_seconds: float | None = Field(description="median (nearest rank)", examples=[3600.0])
    p90_seconds: float | None = Field(description="90th percentile (nearest rank)")

    @classmethod
    def of(cls, durations: Durations) -> "DurationView":
        return cls(count=durations.count, p50_seconds=durations.p50, p90_seconds=durations.p90)


class StageDurations(BaseModel):
    submitted_to_decision: DurationView = Field(
        description="from the request to review's first decision (approval, rejection or coupon)"
    )
    decision_to_paid: DurationView = Field(
        description="from the approval to the payout's success, for paid refunds"
    )
    submitted_to_paid: DurationView = Field(description="from the request to the payout's success")


class SlaView(BaseModel):
    """Breaches as review's own SLA clock called them (`review.sla_breached.v1`, recorded by
    intake): business days, paused while the customer is asked for evidence."""

    with_deadline: int = Field(description="refunds a person reviewed against a deadline")
    breached: int = Field(description="review's clock ran out on them")
    open_overdue: int = Field(description="of those breached, the ones still undecided now")

    @classmethod
    def of(cls, sla: SlaBreaches) -> "SlaView":
        return cls(
            with_deadline=sla.with_deadline, breached=sla.breached, open_overdue=sla.open_overdue
        )


class DecidersView(BaseModel):
    decided: int = Field(
        description="refunds with a current decision (approval, rejection, coupon)"
    )
    automatic: int = Field(description="decided by the policy alone (`decided_by` = `system:…`)")
    staff: int = Field(description="decided by a person")
    automatic_share: float | None = Field(description="automatic / decided; null with none decided")

    @classmethod
    def of(cls, deciders: Deciders) -> "DecidersView":
        return cls(
            decided=deciders.decided,
            automatic=deciders.automatic,
            staff=deciders.staff,
            automatic_share=deciders.automatic_share,
        )


class ReturnStages(BaseModel):
    requested_to_shipped: DurationView = Field(
        description="from review's return request to the platform's shipment"
    )
    delivered_to_received: DurationView = Field(
        description="from the carrier's delivery to the warehouse's receipt"
    )


class ReturnAnalytics(BaseModel):
    """Returns (退货) of the refunds in the window: goods back before money back."""

    required: int = Field(description="refunds review wanted the goods back for")
    approved_or_returned: int = Field(description="refunds approved, sent back, or both")
    return_rate: float | None = Field(
        description="required / approved_or_returned; null when there are none"
    )
    stage_durations: ReturnStages
    inspection_outcomes: dict[str, int] = Field(
        description="inspections by outcome: refund, exchange, reviewer (a person decides)"
    )
    conditions: dict[str, int] = Field(
        description="inspected items by the condition found; `not_received`: none arrived"
    )
    deductions_by_rule: dict[str, list[MoneyModel]] = Field(
        description="what each deduction rule took off refunds, per currency (minor units)"
    )

    @classmethod
    def of(cls, report: ReturnReport) -> "ReturnAnalytics":
        stages = {stage: DurationView.of(d) for stage, d in report.stages.items()}
        return cls(
            required=report.required,
            approved_or_returned=report.approved_or_returned,
            return_rate=report.rate,
            stage_durations=ReturnStages(**stages),
            inspection_outcomes=dict(sorted(report.outcomes.items())),
            conditions=dict(sorted(report.conditions.items())),
            deductions_by_rule={rule: amounts(total) for rule, total in report.deductions.items()},
        )


class AnalyticsFilters(BaseModel):
    tenant: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


EXAMPLE_GROUP = {"count": 2, "requested": CNY}
EXAMPLE_DURATION = {"count": 2, "p50_seconds": 3600.0, "p90_seconds": 86400.0}
EXAMPLE: dict[str, Any] = {
    "object": "refund_analytics",
    "generated_at": "2026-11-30T00:00:00Z",
    "filters": {"tenant": "acme", "created_after": "2026-11-01T00:00:00Z", "created_before": None},
    "refunds": 2,
    "orders_with_refunds": 2,
    "refunds_per_order": 1.0,
    "refund_rate": None,
    "requested": CNY,
    "approved": [{"amount": 11900, "currency": "CNY"}],
    "paid": [{"amount": 11900, "currency": "CNY"}],
    "by_reason": {"damaged": EXAMPLE_GROUP},
    "by_category": {"apparel": EXAMPLE_GROUP},
    "by_channel": {"app": EXAMPLE_GROUP},
    "by_outcome": {"paid": {"count": 1, "requested": [{"amount": 11900, "currency": "CNY"}]}},
    "stage_durations": {stage: EXAMPLE_DURATION for stage in StageDurations.model_fields},
    "sla": {"with_deadline": 1, "breached": 0, "open_overdue": 0},
    "deciders": {"decided": 2, "automatic": 1, "staff": 1, "automatic_share": 0.5},
    "returns": {
        "required": 1,
        "approved_or_returned": 2,
        "return_rate": 0.5,
        "stage_durations": {stage: EXAMPLE_DURATION for stage in ReturnStages.model_fields},
        "inspection_outcomes": {"refund": 1},
        "conditions": {"damaged_by_customer": 1},
        "deductions_by_rule": {"return.deduct.damage": [{"amount": 1190, "currency": "CNY"}]},
    },
}


class RefundAnalytics(BaseModel):
    """Refunds created in the window, as intake knows them now. Money is summed per currency
    in minor units, never converted; groups are keyed by reason, order-line category (`mixed`
    when a refund's items span several), channel and outcome."""

    model_config = example(EXAMPLE)

    object: Literal["refund_analytics"] = "refund_analytics"
    generated_at: datetime
    filters: AnalyticsFilters
    refunds: int = Field(description="refunds created in the window")
    orders_with_refunds: int = Field(description="distinct orders these refunds are for")
    refunds_per_order: float | None = Field(description="refunds / orders_with_refunds")
    refund_rate: float | None = Field(
        description="orders_with_refunds / `orders_placed`: intake learns of an order only when"
        " it is first refunded, so the rate needs the platform's own order count; null without"
    )
    requested: list[MoneyModel] = Field(description="asked for, per currency")
    approved: list[MoneyModel] = Field(description="approved by review, per currency")
    paid: list[MoneyModel] = Field(description="paid out, per currency")
    by_reason: dict[str, GroupView]
    by_category: dict[str, GroupView]
    by_channel: dict[str, GroupView]
    by_outcome: dict[str, GroupView] = Field(
        description="open, approved, rejected, withdrawn, paying, paid, payout_failed,"
        " compensated (a coupon instead of cash)"
    )
    stage_durations: StageDurations
    sla: SlaView
    deciders: DecidersView
    returns: ReturnAnalytics


def report_view(
    report: Report, returns: ReturnReport, filters: AnalyticsFilters, now: datetime
) -> RefundAnalytics:
    def groups(found: dict[str, Group]) -> dict[str, GroupView]:
        return {key: GroupView.of(group) for key, group in found.items()}

    stages = {stage: DurationView.of(d) for stage, d in report.stages.items()}
    return RefundAnalytics(
        generated_at=now,
        filters=filters,
        refunds=report.refunds,
        orders_with_refunds=report.orders,
        refunds_per_order=report.refunds_per_order,
        refund_rate=report.refund_rate,
        requested=amounts(report.requested),
        approved=amounts(report.approved),
        paid=amounts(report.paid),
        by_reason=groups(report.by_reason),
        by_category=groups(report.by_category),
        by_channel=groups(report.by_channel),
        by_outcome=groups(report.by_outcome),
        stage_durations=StageDurations(**stages),
        sla=SlaView.of(report.sla),
        deciders=DecidersView.of(report.deciders),
        returns=ReturnAnalytics.of(returns),
    )


router = APIRouter(
    prefix="/v1/analytics", tags=["analytics"], responses=staff_problem_responses(401, 403)
)

# The query's filters, each with the help the OpenAPI document gives it.
OneTenant = Annotated[
    str | None, Query(min_length=1, max_length=200, description="one platform; all if absent")
]
CreatedAfter = Annotated[
    AwareDatetime | None, Query(description="refunds created after (RFC 3339)")
]
CreatedBefore = Annotated[
    AwareDatetime | None, Query(description="refunds created before (RFC 3339)")
]
OrdersPlaced = Annotated[
    int | None,
    Query(ge=1, le=10**12, description="the platform's orders in the window, for the rate"),
]


@router.get(
    "/refunds",
    response_model=RefundAnalytics,
    summary="Refund analytics: rates, distributions, stage durations, SLA breaches, returns",
)
async def refund_analytics(
    staff: Analyst,
    facts: Facts,
    return_facts: ReturnFactsModel,
    tenant: OneTenant = None,
    created_after: CreatedAfter = None,
    created_before: CreatedBefore = None,
    orders_placed: OrdersPlaced = None,
) -> RefundAnalytics:
    """For finance, auditors and admins, across tenants unless `tenant` names one."""
    if created_after and created_before and created_after >= created_before:
        raise bad_query(
            "created_before", "before_start", "created_before must be after created_after"
        )
    query = AnalyticsQuery(tenant, created_after, created_before, orders_placed)
    now = datetime.now(UTC)
    report = await asyncio.to_thread(analyse, facts, query)
    returns = await asyncio.to_thread(analyse_returns, return_facts, query)
    filters = AnalyticsFilters(
        tenant=tenant, created_after=created_after, created_before=created_before
    )
    return report_view(report, returns, filters, now)
