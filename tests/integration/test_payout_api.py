"""Payout's staff API over SQLite and PostgreSQL: the payout list and one payout, roles,
finance actions on failed payouts (with idempotent retries) and reconciliation."""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.payout.application import PayoutApplication
from services.payout.bootstrap import build, http_api
from services.payout.domain import Payout
from services.payout.providers.gateway import SETTLEMENT_COLUMNS as COLUMNS
from services.payout.settings import PayoutSettings
from shared.contracts import MoneyModel, PaymentRoute, ReviewApprovedV1, envelope
from shared.ids import public_id
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from shared.store import store_env

SECRET = "payout-api-test-secret-0123456789"
DAY = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
HEADER = ",".join(COLUMNS)
_positions = itertools.count(1)


def staff(sub: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {encode(staff_claims(sub, roles, 3600), SECRET)}"}


FIN = staff("zhao", "finance")
AUDITOR = staff("al", "auditor")
ADMIN = staff("root", "admin")
REVIEWER = staff("ann", "reviewer")


@dataclass
class Payouts:
    client: TestClient
    app: PayoutApplication

    def approve(self, *, method: str = "alipay", amount: int = 4200) -> Payout:
        event = ReviewApprovedV1(
            refund_id=f"rf_{uuid.uuid4().hex}",
            tenant="acme",
            order_id="ORD-1",
            amount=MoneyModel(amount=amount, currency="CNY"),
            payment=PaymentRoute(method=method, reference="pay_1"),  # type: ignore[arg-type]
            policy_version="v1",
            rule="auto.small_amount",
            decided_by="policy",
            decided_at=datetime.now(UTC),
        )
        message = envelope(
            event,
            source="review",
            event_id=str(uuid.uuid4()),
            position=next(_positions),
            time=datetime.now(UTC),
            causation_id=None,
        )
        assert self.app.handle(message)
        return self.app.payout(Payout.create_id(message.id))

    def paid(self, amount: int = 4200, at: datetime = DAY) -> Payout:
        payout = self.approve(amount=amount)
        self.app.record_dispatch(payout.id, at)
        return self.app.record_success(payout.id, f"gw_{uuid.uuid4().hex[:8]}", at)

    def failed(self, amount: int = 4200, at: datetime = DAY) -> Payout:
        payout = self.approve(amount=amount)
        self.app.record_dispatch(payout.id, at)
        return self.app.record_failure(payout.id, "card closed", at, final=True)

    def get(self, payout: Payout, headers: dict[str, str] = AUDITOR) -> dict[str, Any]:
        response = self.client.get(f"/v1/payouts/{pid(payout)}", headers=headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def ids(self, headers: dict[str, str] = AUDITOR, **query: Any) -> list[str]:
        response = self.client.get("/v1/payouts", params=query, headers=headers)
        assert response.status_code == 200, response.text
        return [entry["id"] for entry in response.json()["data"]]


def pid(payout: Payout) -> str:
    return public_id("po", payout.id)


def line(number: str, amount: int, status: str = "success", method: str = "alipay") -> str:
    return f"{number},gw_{number[-6:]},{amount},CNY,{method},{status},2026-11-20T03:00:00Z"


@pytest.fixture(params=["sqlite", "postgres"])
def payouts(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Payouts]:
    options: dict[str, Any] = {}
    if request.param == "postgres":
        prefix = request.getfixturevalue("schema_prefix")
        options = {
            "database_url": request.getfixturevalue("postgres_url"),
            "database_schema": f"{prefix}_payout",
        }
    settings = PayoutSettings(env="test", data_dir=tmp_path, jwt_secret=SECRET, **options)
    app = PayoutApplication(env=store_env(settings, "payout"))
    http = http_api(app, settings)
    try:
        with TestClient(http) as client:
            yield Payouts(client, app)
    finally:
        app.close()


# -- the list and one payout ------------------------------------------------------------------


def test_list_is_newest_first_with_filters_and_cursors(payouts: Payouts) -> None:
    made = [payouts.approve(method="alipay") for _ in range(3)]
    made += [payouts.approve(method="card"), payouts.failed()]
    newest_first = [pid(p) for p in reversed(made)]
    assert payouts.ids() == newest_first

    first = payouts.client.get("/v1/payouts", params={"limit": 2}, headers=AUDITOR).json()
    assert [e["id"] for e in first["data"]] == newest_first[:2] and first["has_more"]
    second = payouts.ids(limit=2, starting_after=newest_first[1])
    assert second == newest_first[2:4]
    assert payouts.ids(limit=2, starting_after=newest_first[3]) == newest_first[4:]
    assert payouts.ids(limit=2, ending_before=newest_first[2]) == newest_first[:2]

    assert payouts.ids(method="card") == [pid(made[3])]
    assert payouts.ids(status="failed") == [pid(made[4])]
    assert payouts.ids(refund_id=made[1].refund_id) == [pid(made[1])]
    created = made[2].created_on
    assert payouts.ids(created_after=created.isoformat()) == newest_first[:2]
    assert payouts.ids(created_before=created.isoformat()) == newest_first[3:]
    entry = first["data"][0]
    assert entry["status"] == "failed" and entry["amount"] == {"amount": 4200, "currency": "CNY"}

    unknown = payouts.client.get(
        "/v1/payouts", params={"starting_after": "po_" + "0" * 32}, headers=AUDITOR
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["code"] == "unknown_cursor"
    both = {"starting_after": newest_first[0], "ending_before": newest_first[1]}
    assert payouts.client.get("/v1/payouts", params=both, headers=AUDITOR).status_code == 422
    bad = payouts.client.get("/v1/payouts", params={"status": "lost"}, headers=AUDITOR)
    assert bad.status_code == 422


def test_one_payout_shows_its_dispatches_attempts_and_outcome(payouts: Payouts) -> None:
    payout = payouts.approve()
    payouts.app.record_dispatch(payout.id, DAY)
    payouts.app.record_failed_attempt(payout.id, "timeout", DAY)
    payouts.app.record_failure(payout.id, "closed", DAY + timedelta(minutes=1), final=True)
    body = payouts.get(payout)
    assert body["id"] == pid(payout) and body["status"] == "failed"
    assert body["dispatches"] == [
        {"merchant_refund_no": pid(payout), "route": "alipay", "provider": "gateway"}
    ]
    assert body["attempts"] == 1
    assert body["outcome"]["cause"] == "closed"
    assert [h["type"] for h in body["history"]] == [
        "Requested",
        "Dispatched",
        "AttemptFailed",
        "Failed",
    ]
    by_uuid = payouts.client.get(f"/v1/payouts/{payout.id}", headers=FIN)
    assert by_uuid.status_code == 200 and by_uuid.json()["id"] == pid(payout)
    for missing in ("po_" + "0" * 32, "nonsense"):
        response = payouts.client.get(f"/v1/payouts/{missing}", headers=AUDITOR)
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("application/problem+json")


def test_staff_tokens_and_roles(payouts: Payouts) -> None:
    payout = payouts.failed()
    assert payouts.client.get("/v1/payouts").status_code == 401
    forged = {"Authorization": "Bearer " + encode(staff_claims("x", ["admin"], 60), "other")}
    assert payouts.client.get("/v1/payouts", headers=forged).status_code == 401
    assert payouts.client.get("/v1/payouts", headers=REVIEWER).status_code == 403
    for action, body in (
        ("retry", None),
        ("switch-to-store-balance", {"consent_reference": "CS-1"}),
        ("manual-payment", {"reference": "BT-1"}),
    ):
        url = f"/v1/payouts/{pid(payout)}/{action}"
        assert payouts.client.post(url, json=body, headers=AUDITOR).status_code == 403
    assert payouts.get(payout)["status"] == "failed"
    report = {"day": "2026-11-20", "report": HEADER + "\n"}
    assert (
        payouts.client.post("/v1/reconciliations", json=report, headers=AUDITOR).status_code == 403
    )
    assert payouts.client.get("/v1/reconciliations", headers=REVIEWER).status_code == 403


# -- finance actions --------------------------------------------------------------------------


def test_retry_of_a_failed_payout_records_the_actor_and_replays(payouts: Payouts) -> None:
    payout = payouts.failed()
    url = f"/v1/payouts/{pid(payout)}/retry"
    keyed = {**FIN, "Idempotency-Key": "retry-1"}
    first = payouts.client.post(url, headers=keyed)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "pending" and body["series"] == 2
    # The provider closed the first number, so the new series sends a new one.
    assert body["merchant_refund_no"] == f"{pid(payout)}-2"
    assert body["actions"][0]["actor"] == "zhao" and body["actions"][0]["action"] == "retry"
    assert body["history"][-1]["type"] == "RetryRequested"

    again = payouts.client.post(url, headers=keyed)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == body
    assert payouts.app.payout(payout.id).series == 2  # nothing happened twice

    # Without the key, a second retry is refused: the payout is no longer failed.
    refused = payouts.client.post(url, headers=FIN)
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("payout-action-refused")
    other = payouts.client.post(
        f"/v1/payouts/{pid(payout)}/manual-payment", json={"reference": "X"}, headers=keyed
    )
    assert other.status_code == 409
    assert other.json()["type"].endswith("idempotency-conflict")
    missing = payouts.client.post(f"/v1/payouts/po_{'0' * 32}/retry", headers=FIN)
    assert missing.status_code == 404


def test_manual_payment_and_store_balance(payouts: Payouts) -> None:
    manual = payouts.failed()
    response = payouts.client.post(
        f"/v1/payouts/{pid(manual)}/manual-payment",
        json={"reference": "BT-20261120-0042", "note": "paid by hand"},
        headers=ADMIN,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "paid" and body["provider_reference"] == "BT-20261120-0042"
    assert body["outcome"]["via"] == "manual"
    assert body["history"][-1]["data"]["actor"] == "root"

    switched = payouts.failed()
    blank = payouts.client.post(
        f"/v1/payouts/{pid(switched)}/switch-to-store-balance",
        json={"consent_reference": " "},
        headers=FIN,
    )
    assert blank.status_code == 422
    response = payouts.client.post(
        f"/v1/payouts/{pid(switched)}/switch-to-store-balance",
        json={"consent_reference": "CS-2026-1187"},
        headers=FIN,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["method"] == "store_balance" and body["consent_reference"] == "CS-2026-1187"
    assert body["actions"][0] == {
        "action": "store_balance",
        "actor": "zhao",
        "at": body["actions"][0]["at"],
        "consent": "CS-2026-1187",
    }
    pending = payouts.approve()
    response = payouts.client.post(
        f"/v1/payouts/{pid(pending)}/manual-payment", json={"reference": "BT-1"}, headers=FIN
    )
    assert response.status_code == 409


# -- reconciliation ---------------------------------------------------------------------------


def test_reconciliation_names_every_mismatch_and_is_kept(payouts: Payouts) -> None:
    matched = payouts.paid(4200)
    differs = payouts.paid(5000)
    failed = payouts.failed(3000)
    unlisted = payouts.paid(1000)
    payouts.paid(700, at=DAY - timedelta(days=1))  # another day: not expected in this report
    stranger = "po_" + "a" * 32
    csv = "\n".join(
        [
            HEADER,
            line(pid(matched), 4200),
            line(pid(differs), 5100),
            line(pid(failed), 3000, "success"),
            line(stranger, 900),
            "",
        ]
    )
    posted = payouts.client.post(
        "/v1/reconciliations", json={"day": "2026-11-20", "report": csv}, headers=FIN
    )
    assert posted.status_code == 201, posted.text
    body = posted.json()
    kinds = {f["merchant_refund_no"]: f["kind"] for f in body["findings"]}
    assert kinds == {
        pid(matched): "matched",
        pid(differs): "amount_differs",
        pid(failed): "status_differs",
        stranger: "missing_on_our_side",
        pid(unlisted): "missing_at_provider",
    }
    assert body["counts"] == {
        "matched": 1,
        "amount_differs": 1,
        "status_differs": 1,
        "missing_on_our_side": 1,
        "missing_at_provider": 1,
    }
    assert body["mismatches"] == 4 and body["actor"] == "zhao" and body["day"] == "2026-11-20"

    again = payouts.client.post(
        "/v1/reconciliations", json={"day": "2026-11-20", "report": csv}, headers=ADMIN
    )
    assert again.status_code == 200 and again.json() == body
    shown = payouts.client.get(f"/v1/reconciliations/{body['id']}", headers=AUDITOR)
    assert shown.status_code == 200 and shown.json() == body

    clean = "\n".join([HEADER, line(pid(matched), 4200), ""])
    other_day = payouts.client.post(
        "/v1/reconciliations", json={"day": "2026-11-19", "report": clean}, headers=FIN
    )
    assert other_day.status_code == 201
    assert other_day.json()["counts"] == {"matched": 1, "missing_at_provider": 1}
    listed = payouts.client.get("/v1/reconciliations", headers=AUDITOR).json()
    assert [r["id"] for r in listed["data"]] == [other_day.json()["id"], body["id"]]
    assert "findings" not in listed["data"][0]
    page = payouts.client.get("/v1/reconciliations", params={"limit": 1}, headers=AUDITOR).json()
    assert page["has_more"] and len(page["data"]) == 1
    assert payouts.client.get("/v1/reconciliations/rc_nope", headers=AUDITOR).status_code == 404


class Reads:
    """What the application reads while counting: aggregates loaded, log rows selected."""

    def __init__(self, app: PayoutApplication, monkeypatch: pytest.MonkeyPatch) -> None:
        self.loaded: list[uuid.UUID] = []
        self.log_rows = 0
        self.counting = False
        get, select = app.repository.get, app.recorder.select_notifications

        def loading(aggregate_id: uuid.UUID, *args: Any, **kwargs: Any) -> Any:
            self.loaded += [aggregate_id] if self.counting else []
            return get(aggregate_id, *args, **kwargs)

        def selecting(*args: Any, **kwargs: Any) -> Any:
            found = select(*args, **kwargs)
            self.log_rows += len(found) if self.counting else 0
            return found

        monkeypatch.setattr(app.repository, "get", loading)
        monkeypatch.setattr(app.recorder, "select_notifications", selecting)

    def reconcile(self, app: PayoutApplication, csv: str) -> dict[str, Any]:
        self.loaded, self.log_rows, self.counting = [], 0, True
        try:
            report, created = app.reconcile_report(csv.encode(), DAY.date(), actor="zhao")
        finally:
            self.counting = False
        assert created
        self.loaded.remove(report.id)  # looked for first: this file reconciled before?
        return {"findings": report.findings, "loaded": sorted(self.loaded), "read": self.log_rows}


def test_reconciling_a_day_loads_only_that_days_and_the_reports_payouts(
    payouts: Payouts, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, reads = payouts.app, Reads(payouts.app, monkeypatch)

    def earlier_days(count: int) -> None:
        for n in range(count):
            payouts.paid(100 + n, at=DAY - timedelta(days=1 + n % 7))
        payouts.failed(300, at=DAY - timedelta(days=2))
        payouts.approve()  # still pending

    earlier_days(20)
    paid, failed = payouts.paid(4200), payouts.failed(3000)  # settled on the day reconciled
    late = payouts.paid(800, at=DAY - timedelta(days=3))  # settled earlier, listed this day
    stranger = "po_" + "b" * 32
    listed = [line(pid(paid), 4200), line(pid(late), 800), line(stranger, 900)]
    csv = "\n".join([HEADER, *listed, ""])
    assert app.settled_days.catch_up() > 0  # the log so far: the follower's work
    first = reads.reconcile(app, csv)
    assert [(f["kind"], f["merchant_refund_no"]) for f in first["findings"]] == [
        ("matched", pid(paid)),
        ("matched", pid(late)),
        ("missing_on_our_side", stranger),
        ("missing_at_provider", pid(failed)),
    ]
    # Each payout of the day or of the report once (the stranger: looked for, not found);
    # none of the other days', and no request read from the log.
    assert first["loaded"] == sorted([paid.id, failed.id, late.id, uuid.UUID(hex="b" * 32)])
    assert first["read"] == 0

    # Twice the history later, the read model reads only the new payouts' events (requested,
    # dispatched, settled), and reconciling the same day reads what it read before.
    earlier_days(20)
    assert app.settled_days.catch_up() == 3 * 21 + 1
    again = reads.reconcile(app, csv + "\n")  # another file: a new report
    assert again == first


def test_payouts_the_provider_does_not_list_are_named_in_the_order_requested(
    payouts: Payouts,
) -> None:
    requested = [payouts.approve(amount=100 + n) for n in range(5)]
    for n, payout in enumerate(reversed(requested)):  # settled in the opposite order
        at = DAY + timedelta(minutes=n)
        payouts.app.record_dispatch(payout.id, at)
        payouts.app.record_success(payout.id, f"gw_{n}", at)
    report, _ = payouts.app.reconcile_report((HEADER + "\n").encode(), DAY.date(), actor="zhao")
    assert [f["merchant_refund_no"] for f in report.findings] == [pid(p) for p in requested]
    assert {f["kind"] for f in report.findings} == {"missing_at_provider"}


def test_a_malformed_report_is_a_422_naming_the_line(payouts: Payouts) -> None:
    csv = "\n".join([HEADER, line("po_1", 100), "po_2,gw,abc,CNY,alipay,success,x", ""])
    response = payouts.client.post(
        "/v1/reconciliations", json={"day": "2026-11-20", "report": csv}, headers=FIN
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"].startswith("line 3:")
    no_header = payouts.client.post(
        "/v1/reconciliations", json={"day": "2026-11-20", "report": "a,b\n"}, headers=FIN
    )
    assert no_header.status_code == 422
    bad_day = payouts.client.post(
        "/v1/reconciliations", json={"day": "20-11-2026", "report": HEADER}, headers=FIN
    )
    assert bad_day.status_code == 422


def test_a_file_the_gateway_format_cannot_hold_is_a_422_and_stores_nothing(
    payouts: Payouts,
) -> None:
    """Found by fuzzing: a bare CR inside a line answered 500 (csv.Error)."""

    def post(**body: object) -> Any:
        answer = payouts.client.post(
            "/v1/reconciliations", json={"day": "2026-11-20", **body}, headers=FIN
        )
        assert answer.status_code == 422, answer.text
        return answer.json()["errors"][0]

    bare_cr = f"{HEADER}\n{line('po_1', 100)}\npo_2,gw\r_2,100,CNY,alipay,success,x\n"
    error = post(report=bare_cr)
    assert error["field"] == "report" and error["message"].startswith("line 3:")
    latin1 = base64.b64encode(f"{HEADER}\npo_1,gw,100,CNY,alipay,succ\xe8s,x\n".encode("latin-1"))
    error = post(report_base64=latin1.decode())
    assert error["field"] == "report_base64" and error["message"].startswith("line 2: not UTF-8")
    assert post(report_base64="not base64!")["field"] == "report_base64"
    assert post(report=HEADER, provider="paypal")["field"] == "provider"
    assert "tenant" in post(report=HEADER, provider="stripe")["message"]
    assert "exactly one" in post(report=HEADER, report_base64="YQ==")["message"]
    listed = payouts.client.get("/v1/reconciliations", headers=FIN)
    assert listed.json()["data"] == []


# -- wiring -----------------------------------------------------------------------------------


def test_the_service_serves_the_staff_api_with_its_secret(tmp_path: Path) -> None:
    settings = PayoutSettings(env="test", data_dir=tmp_path, executor_enabled=False, jwt_secret="")
    assert settings.staff_secret() == DEV_JWT_SECRET
    service = build(settings)
    try:
        with TestClient(service.http) as client:
            token = encode(staff_claims("al", ["auditor"], 60), DEV_JWT_SECRET)
            listed = client.get("/v1/payouts", headers={"Authorization": f"Bearer {token}"})
            assert listed.status_code == 200 and listed.json()["data"] == []
    finally:
        service.close()
    real = "a-real-secret-3f9c"
    signing = {
        "audit_signing_key": base64.b64encode(bytes(range(32))).decode(),
        "keystore_master_key": base64.b64encode(bytes(range(32, 64))).decode(),
    }
    with pytest.raises(ValueError, match="REFUNDS_JWT_SECRET"):
        PayoutSettings(env="production", gateway_callback_secret=real, **signing)
    with pytest.raises(ValueError, match="REFUNDS_JWT_SECRET"):
        PayoutSettings(
            env="production", gateway_callback_secret=real, jwt_secret=DEV_JWT_SECRET, **signing
        )
    production = PayoutSettings(
        env="production", gateway_callback_secret=real, jwt_secret=SECRET, **signing
    )
    assert production.staff_secret() == SECRET
