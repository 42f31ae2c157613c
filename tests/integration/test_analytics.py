"""`GET /v1/analytics/refunds` over real PostgreSQL: every figure equals what the test set up
through intake's API and the upstream facts its consumer applies, computed by hand."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.contracts import (
    MoneyModel,
    PaymentRoute,
    PayoutFailedV1,
    PayoutSucceededV1,
    ReviewApprovedV1,
    ReviewCaseOpenedV1,
    ReviewCompensationOfferedV1,
    ReviewRejectedV1,
    ReviewSlaBreachedV1,
)
from shared.staff_tokens import encode, staff_claims
from tests.support.factories import order, refund_body
from tests.support.intake import ACME, GLOBEX, Intake, serve_intake

URL = "/v1/analytics/refunds"


@pytest.fixture
def intake(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Intake]:
    with serve_intake(request, tmp_path, "postgres") as served:
        yield served


def token(intake: Intake, *roles: str) -> dict[str, str]:
    claims = staff_claims("al", roles, 600)
    return {"Authorization": f"Bearer {encode(claims, intake.settings.staff_secret())}"}


def created_at(refund: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(refund["created_at"])


def cny(amount: int) -> list[dict[str, Any]]:
    return [{"amount": amount, "currency": "CNY"}]


class Upstream:
    """The facts review and payout publish about one refund, at seconds after its creation."""

    def __init__(self, intake: Intake, refund: dict[str, Any]) -> None:
        self.intake, self.refund = intake, refund
        self.route = {"refund_id": refund["id"], "tenant": "acme", "order_id": refund["order_id"]}

    def at(self, seconds: float) -> datetime:
        return created_at(self.refund) + timedelta(seconds=seconds)

    def money(self, amount: int | None = None) -> MoneyModel:
        asked = MoneyModel.model_validate(self.refund["amount"])
        return asked if amount is None else MoneyModel(amount=amount, currency=asked.currency)

    def case_opened(self, at: float, deadline: float) -> None:
        self.intake.deliver(
            "review",
            ReviewCaseOpenedV1(
                **self.route,
                tier="general",
                rule="manual.amount",
                policy_version="test-1",
                risk_score=10,
                refundable=self.money(),
                deadline=self.at(deadline),
                opened_at=self.at(at),
            ),
        )

    def breached(self, at: float, deadline: float) -> None:
        """Review's SLA clock ran out (its own business-day clock)."""
        self.intake.deliver(
            "review",
            ReviewSlaBreachedV1(
                **self.route,
                tier="general",
                deadline=self.at(deadline),
                breached_at=self.at(at),
            ),
        )

    def approved(self, at: float, by: str, amount: int | None = None) -> None:
        self.intake.deliver(
            "review",
            ReviewApprovedV1(
                **self.route,
                amount=self.money(amount),
                payment=PaymentRoute(method="alipay", reference="p"),
                policy_version="test-1",
                rule="auto_approve.within_limit",
                decided_by=by,
                decided_at=self.at(at),
            ),
        )

    def rejected(self, at: float, by: str) -> None:
        self.intake.deliver(
            "review",
            ReviewRejectedV1(
                **self.route,
                policy_version="test-1",
                rule="manual.rejected",
                explanation={"en": "No.", "zh-CN": "不予退款。"},
                decided_by=by,
                decided_at=self.at(at),
            ),
        )

    def compensated(self, at: float, by: str) -> None:
        self.intake.deliver(
            "review",
            ReviewCompensationOfferedV1(
                **self.route,
                coupon=MoneyModel(amount=1000, currency="CNY"),
                note="a coupon instead",
                offered_by=by,
                offered_at=self.at(at),
            ),
        )

    def paid(self, at: float, amount: int | None = None) -> None:
        self.intake.deliver(
            "payout",
            PayoutSucceededV1(
                refund_id=self.refund["id"],
                tenant="acme",
                payout_id="po_1",
                amount=self.money(amount),
                method="alipay",
                merchant_refund_no="po_1",
                provider_reference="gw-1",
                paid_at=self.at(at),
                expected_arrival=self.at(at),
            ),
        )

    def payout_failed(self, at: float) -> None:
        self.intake.deliver(
            "payout",
            PayoutFailedV1(
                refund_id=self.refund["id"],
                tenant="acme",
                payout_id="po_2",
                amount=self.money(),
                method="alipay",
                cause="card closed",
                attempts=3,
                failed_at=self.at(at),
            ),
        )


def whole_order(snapshot: dict[str, Any], amount: int, **overrides: Any) -> dict[str, Any]:
    """A request for part of an order's money that names no items (so several may share it)."""
    body = refund_body(amount, order=snapshot, **overrides)
    del body["items"]
    return body


@pytest.fixture
def story(intake: Intake) -> dict[str, dict[str, Any]]:
    """Seven acme refunds that end up differently, and one of another tenant, made first."""
    made = {"globex": intake.create(refund_body(99999), headers=GLOBEX)}
    shared_order = order(30000)
    mixed = order(10000)
    mixed["items"] = [
        {**mixed["items"][0], "unit_price": {"amount": 4000, "currency": "CNY"}},
        {
            "sku": "EARBUDS-1",
            "name": "Earbuds",
            "category": "electronics",
            "quantity": 1,
            "unit_price": {"amount": 6000, "currency": "CNY"},
        },
    ]
    bodies = {
        "r1": whole_order(shared_order, 10000),
        "r2": refund_body(20000, channel="web"),
        "r3": whole_order(shared_order, 5000, reason="wrong_item"),
        "r4": refund_body(3000, reason="not_received", channel="phone"),
        "r5": whole_order(mixed, 10000),
        "r6": refund_body(1500, "USD", reason="changed_mind"),
        "r7": refund_body(8000, reason="quality_defect", channel="chat"),
    }
    made |= {name: intake.create(body) for name, body in bodies.items()}
    r1, r2, r3, r5, r6, r7 = (
        Upstream(intake, made[n]) for n in ("r1", "r2", "r3", "r5", "r6", "r7")
    )
    r1.case_opened(at=60, deadline=3600)
    r1.breached(at=3600, deadline=3600)  # review's clock ran out
    r1.breached(at=3660, deadline=3600)  # called again (a re-published event): one breach
    r1.approved(at=7200, by="wang")
    r1.paid(at=7800)
    r2.approved(at=100, by="system:auto_approve.within_limit", amount=18000)
    r2.paid(at=300, amount=18000)
    r3.case_opened(at=10, deadline=3600)
    r3.rejected(at=1800, by="ann")  # in time
    withdrawn = intake.client.post(
        f"/v1/refunds/{made['r4']['id']}/withdraw", json={"reason": "found it"}, headers=ACME
    )
    assert withdrawn.status_code == 200, withdrawn.text
    r5.case_opened(at=0, deadline=-60)  # its deadline has passed, still undecided
    r5.breached(at=-60, deadline=-60)
    r6.approved(at=50, by="system:auto_approve.within_limit")
    r6.payout_failed(at=500)
    r7.compensated(at=900, by="wang")
    return made


def analytics(intake: Intake, **params: Any) -> dict[str, Any]:
    response = intake.client.get(URL, params=params, headers=token(intake, "auditor"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_one_tenant_in_figures(intake: Intake, story: dict[str, dict[str, Any]]) -> None:
    body = analytics(intake, tenant="acme", orders_placed=12)
    assert body["refunds"] == 7
    assert body["orders_with_refunds"] == 6  # r1 and r3 share an order
    assert body["refunds_per_order"] == pytest.approx(7 / 6)
    assert body["refund_rate"] == 0.5  # 6 orders refunded of the 12 the platform says it had
    assert body["requested"] == [*cny(56000), {"amount": 1500, "currency": "USD"}]
    assert body["approved"] == [*cny(28000), {"amount": 1500, "currency": "USD"}]
    assert body["paid"] == cny(28000)

    def groups(name: str) -> dict[str, tuple[int, list[dict[str, Any]]]]:
        return {key: (g["count"], g["requested"]) for key, g in body[name].items()}

    usd = [{"amount": 1500, "currency": "USD"}]
    assert groups("by_reason") == {
        "changed_mind": (1, usd),
        "damaged": (3, cny(40000)),
        "not_received": (1, cny(3000)),
        "quality_defect": (1, cny(8000)),
        "wrong_item": (1, cny(5000)),
    }
    assert groups("by_channel") == {
        "app": (4, cny(25000) + usd),
        "chat": (1, cny(8000)),
        "phone": (1, cny(3000)),
        "web": (1, cny(20000)),
    }
    assert groups("by_category") == {"apparel": (6, cny(46000) + usd), "mixed": (1, cny(10000))}
    assert groups("by_outcome") == {
        "compensated": (1, cny(8000)),
        "open": (1, cny(10000)),
        "paid": (2, cny(30000)),
        "payout_failed": (1, usd),
        "rejected": (1, cny(5000)),
        "withdrawn": (1, cny(3000)),
    }


def test_stage_durations_sla_and_deciders(intake: Intake, story: dict[str, dict[str, Any]]) -> None:
    body = analytics(intake, tenant="acme")
    stages = body["stage_durations"]
    # First decisions 50 (r6), 100 (r2), 900 (r7), 1800 (r3), 7200 (r1) seconds after the
    # request: nearest rank p50 is the 3rd of 5, p90 the 5th.
    assert stages["submitted_to_decision"] == {"count": 5, "p50_seconds": 900, "p90_seconds": 7200}
    # Paid: r2 200 s after its approval (300 after the request), r1 600 (7800).
    assert stages["decision_to_paid"] == {"count": 2, "p50_seconds": 200, "p90_seconds": 600}
    assert stages["submitted_to_paid"] == {"count": 2, "p50_seconds": 300, "p90_seconds": 7800}
    # r1 decided after its deadline, r5 still open past it; r3 decided in time.
    assert body["sla"] == {"with_deadline": 3, "breached": 2, "open_overdue": 1}
    # r2 and r6 by the policy; r1, r3 (people) and r7 (a coupon, by a person).
    assert body["deciders"] == {"decided": 5, "automatic": 2, "staff": 3, "automatic_share": 0.4}


def test_filters_by_tenant_and_creation_time(
    intake: Intake, story: dict[str, dict[str, Any]]
) -> None:
    everyone = analytics(intake)
    assert everyone["refunds"] == 8
    assert everyone["requested"][0] == {"amount": 56000 + 99999, "currency": "CNY"}
    assert everyone["filters"] == {"tenant": None, "created_after": None, "created_before": None}
    assert analytics(intake, tenant="globex")["refunds"] == 1
    assert analytics(intake, tenant="nobody")["refunds"] == 0
    # Both bounds are exclusive, like the refund list's.
    after_r6 = analytics(intake, tenant="acme", created_after=story["r6"]["created_at"])
    assert after_r6["refunds"] == 1 and after_r6["by_reason"] == {
        "quality_defect": {"count": 1, "requested": cny(8000)}
    }
    before_r1 = analytics(intake, created_before=story["r1"]["created_at"])
    assert before_r1["refunds"] == 1 and before_r1["requested"] == cny(99999)
    window = analytics(
        intake, created_after=story["r1"]["created_at"], created_before=story["r4"]["created_at"]
    )
    assert window["refunds"] == 2  # r2 and r3


def test_an_empty_window_has_no_percentiles_or_shares(intake: Intake) -> None:
    body = analytics(intake)
    assert body["refunds"] == 0 and body["requested"] == [] and body["by_reason"] == {}
    assert body["refunds_per_order"] is None and body["refund_rate"] is None
    assert body["stage_durations"]["submitted_to_paid"] == {
        "count": 0,
        "p50_seconds": None,
        "p90_seconds": None,
    }
    assert body["deciders"]["automatic_share"] is None


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    return body


def test_only_finance_auditors_and_admins(intake: Intake) -> None:
    for role in ("admin", "finance"):
        assert intake.client.get(URL, headers=token(intake, role)).status_code == 200
    problem(intake.client.get(URL), 401)
    problem(intake.client.get(URL, headers=ACME), 401)  # a platform's API key is no staff token
    forged = {"Authorization": f"Bearer {encode(staff_claims('al', ['auditor'], 600), 'x' * 40)}"}
    problem(intake.client.get(URL, headers=forged), 401)
    for role in ("reviewer", "senior_reviewer", "warehouse"):
        body = problem(intake.client.get(URL, headers=token(intake, role)), 403)
        assert body["type"].endswith("/forbidden")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "2026-11-01T00:00:00"}, "query.created_after"),  # no offset
        ({"created_before": "yesterday"}, "query.created_before"),
        ({"tenant": ""}, "query.tenant"),
        ({"orders_placed": "0"}, "query.orders_placed"),
        (
            {"created_after": "2026-11-02T00:00:00Z", "created_before": "2026-11-01T00:00:00Z"},
            "query.created_before",
        ),
    ],
)
def test_bad_parameters_are_problems_naming_the_field(
    intake: Intake, params: dict[str, str], field: str
) -> None:
    response = intake.client.get(URL, params=params, headers=token(intake, "auditor"))
    body = problem(response, 422)
    assert [error["field"] for error in body["errors"]] == [field]


def test_the_openapi_document_describes_the_route(intake: Intake) -> None:
    document = intake.client.get("/openapi.json").json()
    operation = document["paths"][URL]["get"]
    assert {"200", "401", "403", "422"} <= set(operation["responses"])
    schema = document["components"]["schemas"]["RefundAnalytics"]
    assert schema["examples"][0]["object"] == "refund_analytics"
    assert {p["name"] for p in operation["parameters"]} == {
        "tenant",
        "created_after",
        "created_before",
        "orders_placed",
    }
