"""Intake served in-process over a real store, plus the upstream facts review and payout send."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.intake.application import IntakeApplication
from services.intake.bootstrap import build
from services.intake.settings import IntakeSettings
from shared.contracts import (
    IntegrationEvent,
    MoneyModel,
    PaymentRoute,
    PayoutSucceededV1,
    ReviewApprovedV1,
    ReviewRejectedV1,
    envelope,
)
from shared.keystore import open_keystore
from shared.store import store_env

ACME_KEY = "acme-key-0123456789abcdefghij"
GLOBEX_KEY = "globex-key-0123456789abcdefgh"
ACME = {"Authorization": f"Bearer {ACME_KEY}"}
GLOBEX = {"Authorization": f"Bearer {GLOBEX_KEY}"}
NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
_positions = itertools.count(1)


@dataclass
class Intake:
    client: TestClient
    app: IntakeApplication  # a second handle on the same store, as another replica would be
    settings: IntakeSettings

    def stored(self) -> int:
        """How many events the store holds: a refused request must not change it."""
        return int(self.app.recorder.max_notification_id() or 0)

    def create(self, body: dict[str, Any], headers: dict[str, str] = ACME) -> dict[str, Any]:
        response = self.client.post("/v1/refunds", json=body, headers=headers)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def deliver(self, source: str, event: IntegrationEvent) -> None:
        """Apply an upstream integration event as intake's consumer would."""
        position = next(_positions)
        message = envelope(
            event,
            source=source,
            event_id=str(uuid.uuid4()),
            position=position,
            time=NOW,
            causation_id=None,
        )
        assert self.app.handle(message)

    def reject(self, refund: dict[str, Any], tenant: str = "acme") -> None:
        self.deliver(
            "review",
            ReviewRejectedV1(
                refund_id=refund["id"],
                tenant=tenant,
                order_id=refund["order_id"],
                policy_version="test-1",
                rule="window.no_reason.closed",
                explanation={
                    "en": "The 7-day window closed.",
                    "zh-CN": "已超过7天无理由退货期限。",
                },
                decided_by="system:window.no_reason.closed",
                decided_at=NOW,
            ),
        )

    def approve(self, refund: dict[str, Any], amount: int | None = None) -> None:
        money = MoneyModel.model_validate(refund["amount"])
        if amount is not None:
            money = MoneyModel(amount=amount, currency=money.currency)
        self.deliver(
            "review",
            ReviewApprovedV1(
                refund_id=refund["id"],
                tenant="acme",
                order_id=refund["order_id"],
                amount=money,
                payment=PaymentRoute(method="alipay", reference="p"),
                policy_version="test-1",
                rule="auto_approve.within_limit",
                decided_by="system:auto_approve.within_limit",
                decided_at=NOW,
            ),
        )

    def pay(self, refund: dict[str, Any]) -> None:
        self.deliver(
            "payout",
            PayoutSucceededV1(
                refund_id=refund["id"],
                tenant="acme",
                payout_id="po_test",
                amount=MoneyModel.model_validate(refund["amount"]),
                method="alipay",
                merchant_refund_no="po_test",
                provider_reference="gw-1",
                paid_at=NOW,
                expected_arrival=NOW,
            ),
        )


@contextmanager
def serve_intake(request: pytest.FixtureRequest, tmp_path: Path, store: str) -> Iterator[Intake]:
    options: dict[str, Any] = {}
    if store == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        options = {
            "database_url": request.getfixturevalue("postgres_url"),
            "database_schema": f"{prefix}_intake",
        }
    settings = IntakeSettings(
        env="test",
        data_dir=tmp_path,
        relay_enabled=False,
        consumer_enabled=False,
        api_keys=f"acme:{ACME_KEY},globex:{GLOBEX_KEY}",
        **options,
    )
    service = build(settings)
    app = IntakeApplication(env=store_env(settings, "intake"))
    app.keystore = open_keystore(settings, "intake")
    try:
        with TestClient(service.http) as client:
            yield Intake(client, app, settings)
    finally:
        app.close()
        service.close()
