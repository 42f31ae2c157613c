"""The refunds a frozen store holds: a realistic mix driven over the public HTTP APIs.

Used by `scripts/freeze_stores.py`. Platforms act with their API keys, staff with dev JWTs,
the sandboxes are switched over their control endpoints, exactly as users and the drills do.
Every refund ends in a known state (or is left in flight on purpose); `Mix.refunds` says
which, for the fixture's MANIFEST.json.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from shared.auth import DEV_API_KEY
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims

CNY = "CNY"
WAIT_SECONDS = 90.0


def staff(sub: str, *roles: str) -> dict[str, str]:
    token = encode(staff_claims(sub, list(roles), 6 * 3600), DEV_JWT_SECRET)
    return {"Authorization": f"Bearer {token}"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


ANN = staff("ann", "reviewer")
BOB = staff("bob", "reviewer")
WANG = staff("wang", "senior_reviewer")
ZHAO = staff("zhao", "finance")
ROOT = staff("root", "admin")
AUDITOR = staff("audrey", "auditor")
DEV = bearer(DEV_API_KEY)
# Its SMS provider refuses this number: the customer's texts fail (notification.failed.v1).
REFUSED_PHONE = "+8613900000404"


def money(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": CNY}


def _ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def line(sku: str, amount: int, name: str = "T-shirt, L, white") -> dict[str, Any]:
    return {
        "sku": sku,
        "name": name,
        "category": "apparel",
        "quantity": 1,
        "unit_price": money(amount),
        "custom_made": False,
    }


def order(
    order_id: str,
    customer: str,
    lines: list[dict[str, Any]],
    *,
    method: str = "alipay",
    delivered_days_ago: float = 2,
) -> dict[str, Any]:
    paid = sum(item["unit_price"]["amount"] for item in lines)
    return {
        "id": order_id,
        "customer_id": customer,
        "paid": money(paid),
        "paid_at": _ago(delivered_days_ago + 2),
        "delivered_at": _ago(delivered_days_ago),
        "payment": {"method": method, "reference": f"PAY-{order_id}"},
        "items": lines,
        "shipping_fee": money(1000),
    }


def refund_body(
    the_order: dict[str, Any],
    skus: list[str],
    *,
    reason: str = "damaged",
    phone: str = "+8613800000000",
    locale: str = "zh-CN",
) -> dict[str, Any]:
    """A refund of some lines of `the_order`, with a photo, from a customer with e-mail and
    phone (so every channel is used)."""
    lines = [item for item in the_order["items"] if item["sku"] in skus]
    customer = the_order["customer_id"]
    return {
        "order": the_order,
        "items": [{"sku": item["sku"], "quantity": 1} for item in lines],
        "amount": money(sum(item["unit_price"]["amount"] for item in lines)),
        "reason": reason,
        "desired_outcome": "full_refund",
        "description": f"Frozen-store refund of {customer}: stain on the front",
        "evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/1.jpg"}],
        "customer": {
            "name": f"Customer {customer}",
            "email": f"{customer.lower()}@example.com",
            "phone": phone,
            "locale": locale,
        },
        "channel": "app",
        "metadata": {"fixture": "frozen-store", "customer": customer},
    }


def until(check: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


class Mix:
    """Drives the refunds; remembers each one's kind, tenant and customer for the manifest."""

    def __init__(self, urls: dict[str, str], release: str) -> None:
        self.http = {name: httpx.Client(base_url=url, timeout=20) for name, url in urls.items()}
        self.tag = release.replace(".", "-")
        self.refunds: dict[str, dict[str, Any]] = {}
        self.in_flight: list[str] = []

    def close(self) -> None:
        for client in self.http.values():
            client.close()

    # -- HTTP ----------------------------------------------------------------------------------

    def post(
        self, service: str, path: str, body: Any, headers: dict[str, str], *ok: int
    ) -> dict[str, Any]:
        key = {"Idempotency-Key": uuid.uuid4().hex}
        response = self.http[service].post(path, json=body, headers={**headers, **key})
        if response.status_code not in (ok or (200, 201, 202)):
            raise RuntimeError(f"POST {service}{path}: {response.status_code} {response.text}")
        return dict(response.json()) if response.content else {}

    def get(self, service: str, path: str, headers: dict[str, str], **params: Any) -> Any:
        response = self.http[service].get(path, headers=headers, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {service}{path}: {response.status_code} {response.text}")
        return response.json()

    def control(self, sandbox: str, **switches: Any) -> None:
        self.http[sandbox].post("/control", json=switches).raise_for_status()

    def status(self, refund_id: str, key: str = DEV_API_KEY) -> str:
        return str(self.get("intake", f"/v1/refunds/{refund_id}", bearer(key))["status"])

    def wait(self, refund_id: str, *statuses: str, key: str = DEV_API_KEY) -> str:
        return str(
            until(
                lambda: (s := self.status(refund_id, key)) in statuses and s,
                f"{refund_id} to be {' or '.join(statuses)}",
            )
        )

    def case(self, refund_id: str) -> dict[str, Any]:
        return dict(self.get("review", f"/v1/cases/{refund_id}", ANN))

    # -- refunds -------------------------------------------------------------------------------

    def request(
        self,
        kind: str,
        body: dict[str, Any],
        *,
        key: str = DEV_API_KEY,
        tenant: str = "dev-platform",
    ) -> str:
        created = self.post("intake", "/v1/refunds", body, bearer(key), 201)
        refund_id = str(created["id"])
        self.refunds[refund_id] = {
            "kind": kind,
            "tenant": tenant,
            "customer_id": body["order"]["customer_id"],
            "order_id": body["order"]["id"],
            "amount": body["amount"],
            "api_key": "active" if key != DEV_API_KEY else "dev",
        }
        return refund_id

    def simple(
        self, kind: str, amount: int, *, method: str = "alipay", **body: Any
    ) -> tuple[str, dict[str, Any]]:
        """One refund of a one-line order of a customer of its own."""
        customer = f"C-{self.tag}-{kind}"
        lines = [line("TSHIRT", amount)]
        the_order = order(f"ORD-{self.tag}-{kind}", customer, lines, method=method)
        request = refund_body(the_order, ["TSHIRT"], **body)
        return self.request(kind, request), request

    def run(self, acme_key: str) -> None:
        """Every kind, one after the other, each waited for (the gateway switches are global)."""
        for step in (
            self.paid,
            self.paid_after_a_transient_failure,
            self.cross_border,
            self.closed_after_receipt,
            self.two_refunds_of_one_order,
            self.rejected_with_refused_sms,
            self.appeal_not_upheld,
            self.two_approvals_with_liability,
            self.evidence_then_approved,
            self.payout_failed_then_retried,
            self.payout_failed_then_store_balance,
            self.paid_asynchronously,
            self.store_balance,
            self.withdrawn_in_review,
            self.compensated,
            self.escalated_then_approved,
            self.erased_customer,
            self.left_in_review,
            self.left_with_one_of_two_approvals,
            self.left_awaiting_evidence,
        ):
            step()
        self.other_tenant(acme_key)

    def paid(self) -> None:
        """Paid; its first text meets a provider outage (503) and goes out on the retry."""
        self.control("sms", fail_next=1, status=503, retry_after=1)
        refund_id, _ = self.simple("paid", 12900)
        self.wait(refund_id, "paid")

    def paid_after_a_transient_failure(self) -> None:
        """The provider answers 503 once; payout retries by itself."""
        self.control("gateway", fail_next=1, fail_status=503)
        refund_id, _ = self.simple("paid_after_retry", 11900)
        self.wait(refund_id, "paid")

    def cross_border(self) -> None:
        """A card billed in US dollars: payout converts at the gateway's recorded rate."""
        customer = f"C-{self.tag}-cross-border"
        the_order = order(
            f"ORD-{self.tag}-cross-border", customer, [line("TSHIRT", 14900)], method="card"
        )
        the_order["payment"]["currency"] = "USD"
        refund_id = self.request("cross_border", refund_body(the_order, ["TSHIRT"]))
        self.wait(refund_id, "paid")

    def closed_after_receipt(self) -> None:
        refund_id, _ = self.simple("closed", 9900, method="wechat_pay")
        self.wait(refund_id, "paid")
        self.post("intake", f"/v1/refunds/{refund_id}/confirm-receipt", {"note": "got it"}, DEV)
        self.wait(refund_id, "closed")

    def two_refunds_of_one_order(self) -> None:
        """One line refunded before the order was delivered, the other after: the order
        records its delivery with the second request."""
        customer = f"C-{self.tag}-two-lines"
        lines = [line("SOCKS-M", 6450, "Socks, M"), line("CAP-BLUE", 6450, "Cap, blue")]
        the_order = order(f"ORD-{self.tag}-two-lines", customer, lines)
        undelivered = {k: v for k, v in the_order.items() if k != "delivered_at"}
        first = self.request("first_line_paid", refund_body(undelivered, ["SOCKS-M"]))
        self.wait(first, "paid")
        second = self.request("second_line_paid", refund_body(the_order, ["CAP-BLUE"]))
        self.wait(second, "paid")

    def rejected_with_refused_sms(self) -> None:
        """Past the 7-day no-reason window: rejected; the SMS provider refuses the number, so
        the texts fail, and an admin resends one once the number is fixed."""
        self.control("sms", reject=[REFUSED_PHONE])
        customer = f"C-{self.tag}-rejected"
        the_order = order(f"ORD-{self.tag}-rejected", customer, [line("TSHIRT", 12900)])
        the_order.update(delivered_at=_ago(10), paid_at=_ago(12))
        body = refund_body(the_order, ["TSHIRT"], reason="changed_mind", phone=REFUSED_PHONE)
        refund_id = self.request("rejected", body)
        self.wait(refund_id, "rejected")
        failed = until(
            lambda: [
                n
                for n in self.get("notify", "/v1/notifications", AUDITOR, refund_id=refund_id)[
                    "data"
                ]
                if n["channel"] == "sms" and n["step"] == "rejected" and n["status"] == "failed"
            ],
            "the refused SMS to fail",
        )
        self.control("sms", reject=[])
        resend = f"/v1/notifications/{failed[0]['id']}/resend"
        self.post("notify", resend, {"refund_id": refund_id}, ROOT)

    def appeal_not_upheld(self) -> None:
        customer = f"C-{self.tag}-appeal"
        the_order = order(f"ORD-{self.tag}-appeal", customer, [line("TSHIRT", 12900)])
        the_order.update(delivered_at=_ago(10), paid_at=_ago(12))
        body = refund_body(the_order, ["TSHIRT"], reason="changed_mind", locale="en")
        refund_id = self.request("appeal_rejected", body)
        self.wait(refund_id, "rejected")
        statement = {"statement": "I was abroad; the parcel sat at the station for a week."}
        self.post("intake", f"/v1/refunds/{refund_id}/appeal", statement, DEV)
        until(lambda: self.case(refund_id)["state"] == "pending", "the appeal to reopen")
        self.wait(refund_id, "in_review")
        rejection = {
            "reason_code": "window_closed",
            "explanation": {"zh-CN": "申诉未获支持。", "en": "The appeal was not upheld."},
        }
        self.post("review", f"/v1/cases/{refund_id}/reject", rejection, BOB)
        self.wait(refund_id, "rejected")

    def two_approvals_with_liability(self) -> None:
        """The important tier: claimed and released, two people (a senior first), liability
        split with the merchant (its share recovered) and the carrier (written off); the
        senior's second approval is refused and kept on record."""
        refund_id, _ = self.simple("two_approvals", 250000, method="card")
        self.wait(refund_id, "in_review")
        case = f"/v1/cases/{refund_id}"
        self.post("review", f"{case}/claim", {}, ANN)
        self.post("review", f"{case}/release", {}, ANN)
        approval = {
            "amount": money(250000),
            "liability": {"platform": 180000, "merchant": 50000, "carrier": 20000},
            "note": "Seller's packing; the merchant pays its share back",
        }
        self.post("review", f"{case}/approve", approval, WANG)
        self.post("review", f"{case}/approve", approval, WANG, 403)  # nobody approves twice
        self.post("review", f"{case}/approve", approval, BOB)
        self.wait(refund_id, "paid")
        settled = {"reference": f"RECOVERY-{self.tag}"}
        self.post("review", f"{case}/claims/merchant/recover", settled, ZHAO)
        written_off = {"reason": "The carrier went out of business"}
        self.post("review", f"{case}/claims/carrier/write-off", written_off, ZHAO)

    def evidence_then_approved(self) -> None:
        refund_id, _ = self.simple("evidence", 80000)
        self.wait(refund_id, "in_review")
        ask = {"missing": ["photo of the stain"], "message": "Please add a close-up photo."}
        self.post("review", f"/v1/cases/{refund_id}/request-evidence", ask, ANN)
        self.wait(refund_id, "awaiting_evidence")
        photo = {
            "evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/2.jpg"}],
            "note": "Close-up",
        }
        self.post("intake", f"/v1/refunds/{refund_id}/evidence", photo, DEV)
        until(lambda: self.case(refund_id)["state"] == "pending", "the evidence to reach review")
        # Less than asked: the order keeps only the approved amount reserved.
        approval = {"amount": money(70000), "note": "photo checked; the collar was fine"}
        self.post("review", f"/v1/cases/{refund_id}/approve", approval, BOB)
        self.wait(refund_id, "paid")

    def _closed_by_provider(self, kind: str) -> tuple[str, str]:
        self.control("gateway", close_next=1)
        refund_id, _ = self.simple(kind, 12900)
        self.wait(refund_id, "payout_failed")
        payout_id = self.get("intake", f"/v1/refunds/{refund_id}", DEV)["payout"]["payout_id"]
        return refund_id, str(payout_id)

    def payout_failed_then_retried(self) -> None:
        refund_id, payout_id = self._closed_by_provider("payout_retried")
        self.post("payout", f"/v1/payouts/{payout_id}/retry", {}, ZHAO)
        self.wait(refund_id, "paid")

    def payout_failed_then_store_balance(self) -> None:
        refund_id, payout_id = self._closed_by_provider("payout_switched_to_store_balance")
        consent = {"consent_reference": f"CS-{self.tag}-1"}
        self.post("payout", f"/v1/payouts/{payout_id}/switch-to-store-balance", consent, ZHAO)
        self.wait(refund_id, "paid")

    def paid_asynchronously(self) -> None:
        """The provider answers `processing` and settles by its signed callback."""
        self.control("gateway", async_mode=True, completion_delay_ms=300)
        try:
            refund_id, _ = self.simple("paid_by_callback", 15900, method="bank_transfer")
            self.wait(refund_id, "paid")
        finally:
            self.control("gateway", async_mode=False)

    def store_balance(self) -> None:
        refund_id, _ = self.simple("store_balance", 5900, method="store_balance")
        self.wait(refund_id, "paid")

    def withdrawn_in_review(self) -> None:
        refund_id, _ = self.simple("withdrawn", 80000)
        self.wait(refund_id, "in_review")
        reason = {"reason": "Found the parcel at the neighbour's"}
        self.post("intake", f"/v1/refunds/{refund_id}/withdraw", reason, DEV)
        self.wait(refund_id, "withdrawn")

    def compensated(self) -> None:
        refund_id, _ = self.simple("compensated", 80000)
        self.wait(refund_id, "in_review")
        offer = {"coupon": money(5000), "note": "Settled with a coupon by phone"}
        self.post("review", f"/v1/cases/{refund_id}/compensate", offer, WANG)
        self.wait(refund_id, "closed")

    def escalated_then_approved(self) -> None:
        refund_id, _ = self.simple("escalated", 80000)
        self.wait(refund_id, "in_review")
        case = f"/v1/cases/{refund_id}"
        self.post("review", f"{case}/escalate", {"reason": "The merchant disputes it"}, ANN)
        until(lambda: self.case(refund_id)["tier"] == "important", "the escalation")
        approval = {"amount": money(80000), "note": "merchant's objection heard"}
        self.post("review", f"{case}/approve", approval, WANG)
        self.post("review", f"{case}/approve", approval, BOB)
        self.wait(refund_id, "paid")

    def erased_customer(self) -> None:
        refund_id, body = self.simple("erased", 12900)
        self.wait(refund_id, "paid")
        customer = body["order"]["customer_id"]
        erase = {"tenant": "dev-platform", "reason": "customer request"}
        self.post("intake", f"/v1/customers/{customer}/erase", erase, ROOT)
        until(
            lambda: (
                self.get("intake", f"/v1/refunds/{refund_id}", DEV)["personal_data"] == "erased"
            ),
            "the erasure",
        )

    def left_in_review(self) -> None:
        refund_id, _ = self.simple("in_review", 80000)
        self.wait(refund_id, "in_review")
        self.in_flight.append(refund_id)

    def left_with_one_of_two_approvals(self) -> None:
        refund_id, _ = self.simple("in_review_one_approval", 250000, method="wechat_pay")
        self.wait(refund_id, "in_review")
        approval = {"amount": money(250000), "note": "first of two"}
        self.post("review", f"/v1/cases/{refund_id}/approve", approval, WANG)
        until(lambda: len(self.case(refund_id)["approvals"]) == 1, "the first approval")
        self.in_flight.append(refund_id)

    def left_awaiting_evidence(self) -> None:
        refund_id, _ = self.simple("awaiting_evidence", 80000)
        self.wait(refund_id, "in_review")
        ask = {"missing": ["the delivery note"], "message": "Please send the delivery note."}
        self.post("review", f"/v1/cases/{refund_id}/request-evidence", ask, ANN)
        self.wait(refund_id, "awaiting_evidence")
        self.in_flight.append(refund_id)

    def other_tenant(self, acme_key: str) -> None:
        """A platform key issued with `refunds api-keys create`, used for a refund of its own."""
        customer = f"C-{self.tag}-acme"
        the_order = order(f"ORD-{self.tag}-acme", customer, [line("TSHIRT", 12900)])
        refund_id = self.request(
            "other_tenant_paid", refund_body(the_order, ["TSHIRT"]), key=acme_key, tenant="acme"
        )
        self.wait(refund_id, "paid", key=acme_key)
