"""A steady, mixed refund load for the fault drills, and the people who finish each refund.

Seven kinds of refund, each ending in a known state:

- `auto`: 129.00 CNY, damaged, with a photo: approved by rule, then paid.
- `reject`: changed_mind ten days after delivery: rejected by the 7-day window rule.
- `manual`: 2,500.00 CNY, the `important` tier: two people approve (one a senior), then paid.
- `evidence`: 800.00 CNY: a reviewer asks for a photo, the customer sends it, one approves.
- `over`: an `auto` refund followed by a second request for the whole order again: intake
  refuses the second (422), and the first is paid.
- `return`: 129.00 CNY, changed_mind inside the 7-day window: approved by rule, but the
  goods come back first (awaiting_return → shipped → delivered by the sandbox carrier →
  received by the warehouse), then paid in full.
- `return_deduct`: 399.00 CNY of electronics returned the same way: paid less the example
  policy's restocking fee (deduction.restocking_electronics, 10 %): 359.10 CNY.

Each kind's refunds take turns over the four ways a customer paid, each with a payment
reference of its own: `card` (refunded through the dev tenant's Stripe account),
`alipay` (its Alipay account), `wechat_pay` (its WeChat Pay account) and `bank_transfer`
(the sandbox gateway). The emulators take an unknown reference for a payment of
1,000,000 minor units, so one reference per order keeps every order's refunds apart.

Any payout that fails (the drills make every provider close or refuse some) is retried by
finance, so every approved refund ends `paid`. Staff act over HTTP with the dev JWTs, customers
with the dev API key; every action has its own Idempotency-Key, so an action whose answer
was lost to a crash is simply sent again.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from bench.loadgen import schedule_kinds
from shared.auth import DEV_API_KEY
from shared.staff_tokens import DEV_JWT_SECRET, encode, staff_claims
from tests.drills.returns import RETURN_KINDS, return_body, take_return_step
from tests.support.factories import order, refund_body

KINDS = ("auto", "reject", "manual", "evidence", "over", "return", "return_deduct")
MIX = {
    "auto": 10,
    "reject": 3,
    "manual": 2,
    "evidence": 2,
    "over": 1,
    "return": 3,
    "return_deduct": 1,
}
ENDS = {
    "auto": "paid",
    "reject": "rejected",
    "manual": "paid",
    "evidence": "paid",
    "over": "paid",
    "return": "paid",
    "return_deduct": "paid",
}
FINAL = frozenset({"paid", "rejected", "withdrawn", "closed"})
AMOUNTS = {
    "auto": 12900,
    "reject": 12900,
    "manual": 250000,
    "evidence": 80000,
    "over": 12900,
    "return": 12900,
    "return_deduct": 39900,
}
# What the gateway must pay: the amount asked, less what an inspection deducts (10 % of
# 399.00 for electronics returned without a reason).
PAID = {**AMOUNTS, "return_deduct": 35910}
# The steps each kind's customer must hear about, on every channel.
# The messages each kind's customer gets, by occurrence key: a manual case is in review,
# and in review again (`in_review#2`) once the evidence asked for arrives.
STEPS = {
    "auto": {"received", "approved", "paid"},
    "reject": {"received", "rejected"},
    "manual": {"received", "in_review", "approved", "paid"},
    "evidence": {"received", "in_review", "evidence_requested", "in_review#2", "approved", "paid"},
    "over": {"received", "approved", "paid"},
    # A return: review's decision asks for the goods (return_requested); review.approved.v1
    # follows the warehouse's receipt, so `approved` comes after return_received.
    "return": {
        "received",
        "return_requested",
        "return_delivered",
        "return_received",
        "approved",
        "paid",
    },
    "return_deduct": {
        "received",
        "return_requested",
        "return_delivered",
        "return_received",
        "approved",
        "paid",
    },
}
CHANNELS = ("email", "sms", "in_app")
# Who moves the money for each way of paying, once the dev tenant's accounts are connected
# (refunds/dev_providers.py); bank transfers go to the sandbox gateway.
PROVIDER_OF = {
    "card": "stripe",
    "alipay": "alipay",
    "wechat_pay": "wechatpay",
    "bank_transfer": "gateway",
}
METHODS = tuple(PROVIDER_OF)


def staff(sub: str, *roles: str) -> dict[str, str]:
    token = encode(staff_claims(sub, list(roles), 3600), DEV_JWT_SECRET)
    return {"Authorization": f"Bearer {token}"}


ANN = staff("ann", "reviewer")
# In the order they approve: the senior first covers a tier that asks for one.
APPROVERS = {
    "wang": staff("wang", "senior_reviewer"),
    "bob": staff("bob", "reviewer"),
    "zhao": staff("zhao", "finance"),
}
FINANCE = staff("zhao", "finance")
AUDITOR = staff("drill.auditor", "auditor")
PLATFORM = {"Authorization": f"Bearer {DEV_API_KEY}"}


@dataclass
class Refund:
    id: str
    kind: str
    order_id: str
    amount: int
    method: str = "alipay"
    payment_reference: str = ""
    status: str = "submitted"
    evidence_requested: bool = False
    evidence_sent: bool = False
    retries: int = 0
    last_retry: float = 0.0
    # A return's steps taken (tests/drills/returns.py): each is sent until answered.
    tracking_number: str | None = None
    shipped: bool = False
    delivered: bool = False
    received: bool = False


@dataclass(frozen=True)
class Urls:
    intake: str
    review: str
    payout: str
    notify: str
    gateway: str
    sms: str
    carrier: str
    stripe: str
    alipay: str
    wechatpay: str


def payment(method: str) -> dict[str, str]:
    """A payment nobody refunded before, with a reference its provider accepts: Stripe's
    a PaymentIntent id, Alipay's and WeChat Pay's an out_trade_no, the gateway's any."""
    unique = uuid.uuid4().hex
    prefix = {"card": "pi_", "alipay": "DA", "wechat_pay": "DW", "bank_transfer": "DB"}[method]
    return {"method": method, "reference": prefix + unique[:24]}


def body_of(kind: str, method: str = "alipay") -> dict[str, Any]:
    amount = AMOUNTS[kind]
    if kind in RETURN_KINDS:
        body = return_body(kind, amount)
    else:
        customer = f"C-drill-{uuid.uuid4().hex[:10]}"  # no history: no risk points for repeats
        if kind == "reject":
            body = refund_body(amount, reason="changed_mind")
            body["order"] = order(amount, delivered_days_ago=10, customer_id=customer)
        else:
            body = refund_body(amount)
            body["order"]["customer_id"] = customer
    body["order"]["payment"] = payment(method)
    body["metadata"] = {"drill": kind}
    return body


class Workload:
    """Offers refunds at a steady rate and acts for staff and customers until each is final."""

    def __init__(self, urls: Urls) -> None:
        self.urls = urls
        self.refunds: dict[str, Refund] = {}
        self.refused_over_refunds = 0
        self.transport_errors = 0
        self._offered: Counter[str] = Counter()  # kind -> refunds offered, for their methods
        self._lock = threading.Lock()
        self._clients = threading.local()

    # -- HTTP, tolerant of a component being down ----------------------------------------------

    def _client(self) -> httpx.Client:
        client = getattr(self._clients, "client", None)
        if client is None:
            client = self._clients.client = httpx.Client(timeout=10)
        return client

    def _send(
        self, method: str, url: str, headers: dict[str, str], **kwargs: Any
    ) -> httpx.Response | None:
        """The answer, or None when the component could not answer (down, or 5xx)."""
        try:
            response = self._client().request(method, url, headers=headers, **kwargs)
        except httpx.TransportError:
            with self._lock:
                self.transport_errors += 1
            return None
        if response.status_code >= 500:
            return None
        return response

    def _post(
        self, url: str, body: dict[str, Any], headers: dict[str, str], key: str
    ) -> httpx.Response | None:
        return self._send("POST", url, {**headers, "Idempotency-Key": key}, json=body)

    def _until_answered(self, call: Callable[[], httpx.Response | None], what: str) -> Any:
        deadline = time.monotonic() + 60
        while (response := call()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"no answer for 60 s: {what}")
            time.sleep(0.2)
        return response

    # -- offering refunds ----------------------------------------------------------------------

    def offer(self, kinds: list[str], rate: float) -> None:
        """POST one refund per kind at `rate` per second (blocking; run it in a thread)."""
        started = time.monotonic()
        for n, kind in enumerate(kinds):
            pause = started + n / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            self.request(kind)

    def request(self, kind: str) -> Refund:
        # Each kind's refunds take turns over the methods (and so the providers), each kind
        # from a method of its own, so that even a short drill reaches every provider.
        with self._lock:
            method = METHODS[(self._offered[kind] + KINDS.index(kind)) % len(METHODS)]
            self._offered[kind] += 1
        body, key = body_of(kind, method), uuid.uuid4().hex
        url = self.urls.intake + "/v1/refunds"
        response = self._until_answered(lambda: self._post(url, body, PLATFORM, key), "intake")
        assert response.status_code == 201, response.text
        paid_by = body["order"]["payment"]
        refund = Refund(
            response.json()["id"],
            kind,
            body["order"]["id"],
            AMOUNTS[kind],
            method=paid_by["method"],
            payment_reference=paid_by["reference"],
        )
        with self._lock:
            self.refunds[refund.id] = refund
        if kind == "over":  # the whole order again: more than is left to refund
            again, again_key = {**body, "metadata": {"drill": "over.second"}}, uuid.uuid4().hex
            second = self._until_answered(
                lambda: self._post(url, again, PLATFORM, again_key), "intake"
            )
            assert second.status_code == 422, second.text
            assert "amount" in second.text, second.text
            with self._lock:
                self.refused_over_refunds += 1
        return refund

    # -- acting for staff and customers --------------------------------------------------------

    def open_refunds(self) -> list[Refund]:
        with self._lock:
            return [r for r in self.refunds.values() if r.status not in FINAL]

    def act_once(self, pool: ThreadPoolExecutor) -> None:
        """Look at every refund not yet final and take its next step, if it has one."""
        list(pool.map(self._advance, self.open_refunds()))

    def _advance(self, refund: Refund) -> None:
        view = self._send("GET", f"{self.urls.intake}/v1/refunds/{refund.id}", PLATFORM)
        if view is None:
            return
        assert view.status_code == 200, view.text
        refund.status = view.json()["status"]
        if refund.status == "in_review":
            self._review(refund)
        elif refund.status == "awaiting_evidence" and not refund.evidence_sent:
            photo = {"evidence": [{"kind": "photo", "url": "https://cdn.example.com/p/2.jpg"}]}
            url = f"{self.urls.intake}/v1/refunds/{refund.id}/evidence"
            answer = self._post(url, photo, PLATFORM, f"drill-evidence-{refund.id}")
            if answer is not None:
                assert answer.status_code in (200, 201), answer.text
                refund.evidence_sent = True
        elif refund.status == "payout_failed" and time.monotonic() - refund.last_retry > 3:
            self._retry_payout(refund, view.json()["payout"]["payout_id"])
        elif refund.kind in RETURN_KINDS:
            take_return_step(self, refund)

    def _review(self, refund: Refund) -> None:
        case_url = f"{self.urls.review}/v1/cases/{refund.id}"
        if refund.kind == "evidence" and not refund.evidence_requested:
            ask = {"missing": ["photo of the stain"], "message": "Please add a close-up photo."}
            key = f"drill-ask-{refund.id}"
            answer = self._post(f"{case_url}/request-evidence", ask, ANN, key)
            if answer is not None and answer.status_code in (200, 201):
                refund.evidence_requested = True
            return
        if refund.kind not in ("manual", "evidence"):
            return
        case = self._send("GET", case_url, ANN)
        if case is None or case.status_code != 200 or case.json()["state"] != "pending":
            return
        done = {a["person"] for a in case.json()["approvals"]}
        person = next((p for p in APPROVERS if p not in done), None)
        if person is None:
            return
        approval = {"amount": {"amount": refund.amount, "currency": "CNY"}, "note": "drill"}
        key = f"drill-approve-{refund.id}-{person}"
        answer = self._post(f"{case_url}/approve", approval, APPROVERS[person], key)
        if answer is not None:
            assert answer.status_code in (200, 201, 409), answer.text

    def _retry_payout(self, refund: Refund, payout_id: str) -> None:
        url = f"{self.urls.payout}/v1/payouts/{payout_id}/retry"
        key = f"drill-retry-{refund.id}-{refund.retries}"
        answer = self._post(url, {}, FINANCE, key)
        if answer is not None:
            assert answer.status_code in (200, 201, 409), answer.text
            refund.retries += 1
            refund.last_retry = time.monotonic()

    def finish(self, timeout: float) -> None:
        """Act until every refund is final; fail naming the ones that are not."""
        deadline = time.monotonic() + timeout
        with ThreadPoolExecutor(8) as pool:
            while self.open_refunds():
                if time.monotonic() > deadline:
                    waiting = Counter(f"{r.kind}:{r.status}" for r in self.open_refunds())
                    raise AssertionError(f"not final after {timeout:.0f} s: {dict(waiting)}")
                self.act_once(pool)
                time.sleep(0.3)

    def run(self, count: int, rate: float, during: Callable[[], None], timeout: float) -> None:
        """Offer `count` refunds at `rate`/s, run `during` (the fault) meanwhile, then finish."""
        kinds = schedule_kinds(MIX, count)
        offering = threading.Thread(target=self.offer, args=(kinds, rate), daemon=True)
        offering.start()
        stop = threading.Event()

        def act() -> None:
            with ThreadPoolExecutor(8) as pool:
                while not stop.is_set():
                    self.act_once(pool)
                    stop.wait(0.3)

        acting = threading.Thread(target=act, daemon=True)
        acting.start()
        try:
            during()
            offering.join(timeout=count / rate + 120)
            assert not offering.is_alive(), "the load generator did not finish offering"
        finally:
            stop.set()
            acting.join(timeout=60)
        self.finish(timeout)
