"""The console's case page shows the whole refund: review's case (evidence, risk signals, the
policy's checks, approvals and what is still needed, decisions, history) beside intake's staff
read of the refund (order, lines, amounts, the customer's contact unless erased, the return).
A rejection's internal note is kept for staff and never published. In-process: the sandbox
identity provider (uvicorn), intake and review (SQLite), the console calling both with the
signed-in person's own token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.console.bootstrap import console_app
from services.console.sessions import SqliteSessions
from services.console.settings import ConsoleSettings
from services.intake.application import IntakeApplication
from services.intake.bootstrap import build as build_intake
from services.intake.publishing import to_integration as intake_events
from services.intake.settings import IntakeSettings
from services.review.application import ReviewApplication
from services.review.bootstrap import staff_api
from services.review.domain import ReviewCase
from services.review.policy_document import default_policy
from services.review.publishing import to_integration as review_events
from services.review.queue import ReviewQueue
from shared.contracts import (
    MoneyModel,
    ReturnAddressModel,
    ReturnLine,
    ReturnRequestedV1,
    ReviewRejectedV1,
    envelope,
)
from shared.settings import ServiceSettings
from shared.staff import StaffAuth
from shared.staff_oidc import OidcConfig
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from shared.store import store_env
from tests.integration.test_console import CONSOLE_URL, form_fields, sign_in
from tests.support.factories import refund_body
from tests.support.identity import serve_identity
from tests.support.review_api import SECRET, Clock

ACME_KEY = "acme-console-key-0123456789abcdef"
ACME = {"Authorization": f"Bearer {ACME_KEY}"}


@dataclass
class World:
    issuer: str
    intake_client: TestClient
    intake: IntakeApplication
    review: ReviewApplication
    console: TestClient
    carried: int = 0
    published: list[Any] = field(default_factory=list)

    def request(self, yuan: int = 2500) -> dict[str, Any]:
        """A refund asked for at intake (a person's name, e-mail and phone; a shipping fee),
        carried to review as the relay would: over 2000.00 it opens an important case."""
        body = refund_body(yuan * 100)
        body["order"]["customer_id"] = f"C-{uuid.uuid4().hex[:8]}"
        body["order"]["shipping_fee"] = {"amount": 1200, "currency": "CNY"}
        body["customer"] = {
            "name": "李伟",
            "email": "li.wei@example.com",
            "phone": "+8613800000000",
            "locale": "zh-CN",
        }
        created = self.intake_client.post("/v1/refunds", json=body, headers=ACME)
        assert created.status_code == 201, created.text
        self.carry()
        refund: dict[str, Any] = created.json()
        return refund

    def carry(self) -> None:
        for notification in self.intake.recorder.select_notifications(
            start=self.carried, limit=1000, inclusive_of_start=False
        ):
            self.carried = notification.id
            integration = intake_events(self.intake.mapper.to_domain_event(notification))
            if integration is not None:
                assert self.review.handle(_message(integration, "intake", notification.id))

    def review_published(self) -> list[Any]:
        """What review's relay would publish, from its whole log."""
        found = []
        for notification in self.review.recorder.select_notifications(start=1, limit=1000):
            integration = review_events(self.review.mapper.to_domain_event(notification))
            if integration is not None:
                found.append(integration)
        return found


def _message(integration: Any, source: str, position: int) -> Any:
    return envelope(
        integration,
        source=source,
        event_id=str(uuid.uuid4()),
        position=position,
        time=datetime.now(UTC),
        causation_id=None,
    )


def _world(tmp_path: Path, issuer: str, intake_transport: Any = None) -> Iterator[World]:
    intake_service = build_intake(
        IntakeSettings(
            env="test",
            data_dir=tmp_path,
            relay_enabled=False,
            consumer_enabled=False,
            api_keys=f"acme:{ACME_KEY}",
            oidc_issuer=issuer,
        )
    )
    intake_app: IntakeApplication = intake_service.http.state.intake
    settings = ServiceSettings(env="test", data_dir=tmp_path)
    review = ReviewApplication(
        default_policy(), env=store_env(settings, "review"), clock=Clock(datetime.now(UTC))
    )
    review.record_shipped_policy()
    review_http = staff_api(review, ReviewQueue(review), StaffAuth(SECRET, OidcConfig(issuer)))
    console = console_app(
        ConsoleSettings(env="test", data_dir=tmp_path, oidc_issuer=issuer, console_url=CONSOLE_URL),
        SqliteSessions(tmp_path / "console.sqlite", "console-test-session-secret"),
        transports={
            "review": httpx.ASGITransport(app=review_http),
            "intake": intake_transport or httpx.ASGITransport(app=intake_service.http),
        },
    )
    try:
        with (
            TestClient(intake_service.http) as intake_client,
            TestClient(console, base_url=CONSOLE_URL) as console_client,
        ):
            yield World(issuer, intake_client, intake_app, review, console_client)
    finally:
        review.close()
        intake_service.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with serve_identity(tmp_path / "idp") as issuer:
        yield from _world(tmp_path, issuer)


def test_the_case_page_shows_the_whole_refund(world: World) -> None:
    refund = world.request(2500)
    refund_id = refund["id"]
    sign_in(world.console, world.issuer, "ann", start=f"/cases/{refund_id}")
    page = world.console.get(f"/cases/{refund_id}")
    assert page.status_code == 200, page.text
    html = page.text
    # The order, its lines and amounts, from intake.
    assert refund["order_id"] in html and "acme" in html
    assert "<code>TSHIRT-L-WHITE</code>" in html and "T-shirt, L, white" in html
    assert "¥2,500.00" in html and "¥12.00" in html  # the price and the shipping fee
    assert "alipay" in html
    # The customer's contact, opened for staff.
    assert "李伟" in html and "li.wei@example.com" in html and "+8613800000000" in html
    # Evidence (linked), risk, the policy's trail, approvals and what is still needed, history.
    assert 'href="https://cdn.example.com/p/1.jpg" rel="noopener noreferrer nofollow"' in html
    assert "风险分" in html
    case = world.review.repository.get(ReviewCase.create_id(refund_id))
    for check in case.assessment["checks"]:
        assert f"<code>{check['rule']}</code>" in html
    assert f"<code>{case.assessment['rule']}</code>" in html
    assert "还需 2 个批准。" in html and "暂无。" in html
    history = html.split('id="history"')[1]
    assert case.history and case.history[0]["action"] == "opened"
    assert "已立案" in history  # each step in words, never its code
    assert all(f"<code>{e['action']}</code>" not in history for e in case.history)
    # No return: no warehouse link.
    assert 'href="/warehouse/' not in html

    en = world.console.post(
        "/language",
        data={
            "csrf_token": form_fields(html, "/language")["csrf_token"],
            "locale": "en",
            "next": f"/cases/{refund_id}",
        },
    )
    assert "Order" in en.text and "Items" in en.text and "In this refund" in en.text
    assert "2 more approvals." in en.text


def test_an_erased_customer_shows_as_erased_and_the_facts_stay(world: World) -> None:
    refund = world.request(2500)
    admin = encode(staff_claims("root", ["admin"], 600), DEV_JWT_SECRET)
    customer_id = world.intake_client.get(f"/v1/refunds/{refund['id']}", headers=ACME).json()[
        "customer_id"
    ]
    erased = world.intake_client.post(
        f"/v1/customers/{customer_id}/erase",
        json={"tenant": "acme"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert erased.status_code == 200, erased.text
    sign_in(world.console, world.issuer, "bob", start=f"/cases/{refund['id']}")
    html = world.console.get(f"/cases/{refund['id']}").text
    assert "已删除：该客户的个人数据已被删除。" in html
    assert "李伟" not in html and "li.wei@example.com" not in html and "[erased]" not in html
    assert "<code>TSHIRT-L-WHITE</code>" in html and "¥2,500.00" in html


def test_a_rejection_keeps_its_internal_note_for_staff_only(world: World) -> None:
    refund = world.request(2500)
    refund_id = refund["id"]
    sign_in(world.console, world.issuer, "ann", start=f"/cases/{refund_id}")
    page = world.console.get(f"/cases/{refund_id}").text
    fields = form_fields(page, f"/cases/{refund_id}/reject")
    assert 'name="internal_note"' in page
    note = "Same photo as on an earlier refund of this customer."
    done = world.console.post(
        f"/cases/{refund_id}/reject",
        data={
            **fields,
            "reason_code": "insufficient_evidence",
            "explanation_zh": "证据不足。",
            "explanation_en": "The evidence does not show the damage.",
            "internal_note": note,
        },
    )
    assert done.status_code == 200, done.text
    assert str(done.url).endswith(f"/cases/{refund_id}")
    case = world.review.repository.get(ReviewCase.create_id(refund_id))
    assert case.state == "rejected" and case.decision["internal_note"] == note
    assert case.decision["reason_code"] == "insufficient_evidence"
    # Shown to staff on the case, with both explanations.
    assert note in done.text and "内部备注（仅员工可见）" in done.text
    assert "证据不足。" in done.text and "The evidence does not show the damage." in done.text
    # Never published: review's rejection event carries the explanation, not the note.
    (rejection,) = [e for e in world.review_published() if isinstance(e, ReviewRejectedV1)]
    assert rejection.explanation["en"] == "The evidence does not show the damage."
    assert note not in rejection.model_dump_json() and "internal_note" not in rejection.model_dump()


def test_a_refused_rejection_keeps_the_typed_texts_and_changes_nothing(world: World) -> None:
    refund = world.request(2500)
    refund_id = refund["id"]
    sign_in(world.console, world.issuer, "ann", start=f"/cases/{refund_id}")
    page = world.console.get(f"/cases/{refund_id}").text
    answer = world.console.post(
        f"/cases/{refund_id}/reject",
        data={
            **form_fields(page, f"/cases/{refund_id}/reject"),
            "reason_code": "no_defect_found",
            "explanation_zh": "无缺陷。",
            "explanation_en": "",
            "internal_note": "kept while the form is fixed",
        },
    )
    assert answer.status_code == 422
    assert "<code>explanation_en</code>" in answer.text
    assert "kept while the form is fixed</textarea>" in answer.text
    assert world.review.repository.get(ReviewCase.create_id(refund_id)).state == "pending"


def test_a_return_shows_its_state_and_links_to_the_warehouse_page(world: World) -> None:
    refund = world.request(2500)
    refund_id = refund["id"]
    now = datetime.now(UTC)
    asked = ReturnRequestedV1(
        refund_id=refund_id,
        tenant="acme",
        order_id=refund["order_id"],
        rma="RMA-7K3Q9D2M",
        desired_outcome="full_refund",
        address=ReturnAddressModel(
            name="退货仓", phone="+86 21 5555 0100", lines=["申江路 100 号"], postcode="201203"
        ),
        items=[
            ReturnLine(
                sku="TSHIRT-L-WHITE", quantity=1, price=MoneyModel(amount=250000, currency="CNY")
            )
        ],
        amount=MoneyModel(amount=250000, currency="CNY"),
        ship_by=now + timedelta(days=7),
        policy_version="test-1",
        rule="return.goods_first",
        decided_by="wang",
        requested_at=now,
    )
    assert world.intake.handle(_message(asked, "review", 10_000))
    sign_in(world.console, world.issuer, "wu", start=f"/cases/{refund_id}")
    html = world.console.get(f"/cases/{refund_id}").text
    assert "<code>RMA-7K3Q9D2M</code>" in html and "等待退货" in html
    assert f'<a href="/warehouse/{refund_id}">' in html


def test_without_intake_the_case_still_shows_and_says_what_is_missing(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("intake is down", request=request)

    with serve_identity(tmp_path / "idp") as issuer:
        for world in _world(tmp_path, issuer, httpx.MockTransport(down)):
            refund = world.request(2500)
            sign_in(world.console, world.issuer, "ann", start=f"/cases/{refund['id']}")
            page = world.console.get(f"/cases/{refund['id']}")
            assert page.status_code == 200
            assert "受理服务没有响应" in page.text  # intake, named
            assert refund["order_id"] in page.text and "还需 2 个批准。" in page.text
