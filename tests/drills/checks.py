"""What must hold after every drill, checked against the outside world's own records: the
payment providers' ledgers (the gateway's, Stripe's, Alipay's, WeChat Pay's), the mailbox,
the SMS provider, the webhook receiver, and the audit ledgers."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sandbox.mailsink import read_mailbox
from services.notify.messages.steps import occurrence_key
from tests.drills.ledgers import PROVIDERS, read_ledgers
from tests.drills.returns import RETURN_KINDS
from tests.drills.workload import (
    AUDITOR,
    CHANNELS,
    ENDS,
    PAID,
    PLATFORM,
    PROVIDER_OF,
    STEPS,
    Refund,
    Workload,
)
from tests.e2e.support import webhook_deliveries
from tests.support.receiver import Receiver

SETTLE_SECONDS = 90


@dataclass
class Counts:
    """What a drill printed: enough to see at a glance that nothing was lost or doubled."""

    refunds: Counter[str] = field(default_factory=Counter)  # kind → refunds
    ends: Counter[str] = field(default_factory=Counter)  # final status → refunds
    payments: Counter[str] = field(default_factory=Counter)  # provider → refunds that moved money
    unmoved: Counter[str] = field(default_factory=Counter)  # provider → refunds closed or failed
    payout_retries: int = 0  # payouts that failed and finance retried
    refused_over_refunds: int = 0
    transport_errors: int = 0  # requests of staff and customers that found a service down
    messages: Counter[str] = field(default_factory=Counter)  # "channel:status" → messages
    emails_received: int = 0
    texts_received: int = 0
    webhooks: Counter[str] = field(default_factory=Counter)  # delivery state → deliveries
    webhook_posts: int = 0
    webhook_types: Counter[str] = field(default_factory=Counter)  # event type → deliveries
    ledgers: dict[str, int] = field(default_factory=dict)  # service → events sealed, verified

    def line(self) -> str:
        return (
            f"refunds {dict(self.refunds)} ended {dict(self.ends)}; "
            f"payments by provider {dict(self.payments)} "
            f"(closed or failed there {dict(self.unmoved)}); "
            f"payouts retried {self.payout_retries}; "
            f"over-refunds refused {self.refused_over_refunds}; "
            f"requests that found a service down {self.transport_errors}; "
            f"messages {dict(self.messages)}; e-mails received {self.emails_received}; "
            f"texts received {self.texts_received}; webhooks {dict(self.webhooks)} "
            f"({self.webhook_posts} POSTs) by type {dict(self.webhook_types)}; "
            f"sealed and verified {self.ledgers}"
        )


_clients = threading.local()


def _client() -> httpx.Client:
    """A keep-alive client per thread of the checks' pools."""
    client = getattr(_clients, "client", None)
    if client is None:
        client = _clients.client = httpx.Client(timeout=10)
    return client


def views(workload: Workload) -> dict[str, dict[str, Any]]:
    def get(refund_id: str) -> dict[str, Any]:
        response = _client().get(f"{workload.urls.intake}/v1/refunds/{refund_id}", headers=PLATFORM)
        assert response.status_code == 200, response.text
        return dict(response.json())

    with ThreadPoolExecutor(8) as pool:
        ids = list(workload.refunds)
        return dict(zip(ids, pool.map(get, ids), strict=True))


def check_ends(workload: Workload, found: dict[str, dict[str, Any]], counts: Counts) -> None:
    """Every refund ended as its kind should."""
    wrong = {
        refund.id: (refund.kind, found[refund.id]["status"])
        for refund in workload.refunds.values()
        if found[refund.id]["status"] != ENDS[refund.kind]
    }
    assert not wrong, f"{len(wrong)} refund(s) ended wrongly: {list(wrong.items())[:5]}"
    counts.refunds = Counter(r.kind for r in workload.refunds.values())
    counts.ends = Counter(view["status"] for view in found.values())
    counts.refused_over_refunds = workload.refused_over_refunds
    counts.transport_errors = workload.transport_errors
    counts.payout_retries = sum(1 for r in workload.refunds.values() if r.retries)


def check_payments(workload: Workload, found: dict[str, dict[str, Any]], counts: Counts) -> None:
    """Money moved once per paid refund, at the provider its method goes to (the gateway,
    Stripe, Alipay or WeChat Pay, by their own records), from the order's payment, for the
    amount the refund shows paid (less a return's deductions), and never for the others;
    no provider refunded a number or a payout twice; no order got back more than it paid."""
    ledgers = read_ledgers(workload.urls)
    moved = [m for provider in PROVIDERS for m in ledgers[provider] if m.moved_money]
    for provider in PROVIDERS:
        numbers = Counter(m.merchant_refund_no for m in ledgers[provider])
        twice = [n for n, times in numbers.items() if times > 1]
        assert not twice, f"{provider} took a merchant refund number twice: {twice[:5]}"
    by_payout = Counter(m.payout for m in moved)  # across providers: one payout, one refund
    twice = [(p, [m for m in moved if m.payout == p]) for p, n in by_payout.items() if n > 1]
    assert not twice, f"paid twice: {twice[:3]}"
    paid = {
        view["payout"]["payout_id"]: refund_id
        for refund_id, view in found.items()
        if view["status"] == "paid"
    }
    assert set(by_payout) == set(paid), (
        f"money moved for {len(set(by_payout) - set(paid))} payout(s) of unpaid refunds "
        f"{sorted(set(by_payout) - set(paid))[:3]}; "
        f"{len(set(paid) - set(by_payout))} paid refund(s) missing from every provider's "
        f"records {sorted(set(paid) - set(by_payout))[:3]}"
    )
    per_order: Counter[str] = Counter()
    for movement in moved:
        refund = workload.refunds[paid[movement.payout]]
        shown = found[refund.id]["payout"]["amount"]
        assert shown == {"amount": PAID[refund.kind], "currency": "CNY"}, (refund, shown)
        assert movement.provider == PROVIDER_OF[refund.method], (refund, movement)
        assert movement.payment_reference == refund.payment_reference, (refund, movement)
        assert (movement.amount, movement.currency) == (shown["amount"], "CNY"), movement
        per_order[refund.order_id] += movement.amount
    paid_for = {r.order_id: r.amount for r in workload.refunds.values()}  # one order each
    over = {o: n for o, n in per_order.items() if n > paid_for[o]}
    assert not over, f"orders refunded more than they paid: {over}"
    counts.payments = Counter(m.provider for m in moved)
    counts.unmoved = Counter(m.provider for p in PROVIDERS for m in ledgers[p] if not m.moved_money)


def check_messages(workload: Workload, data_dir: Path, counts: Counts, *, uncertain: int) -> None:
    """One message per (refund, step, channel): notify's own log, then what the mail server
    and the SMS provider actually received. At most `uncertain` e-mails may have been cut off
    by a kill between sending and recording (never sent twice)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    waiting = list(workload.refunds.values())
    while waiting:  # only the refunds whose messages are not all out yet are asked again
        logs = _notify_logs(workload, [r.id for r in waiting])
        waiting = [r for r in waiting if not _settled(r, logs[r.id])]
        if waiting and time.monotonic() > deadline:
            sample = {r.id: _missing(r, logs[r.id]) for r in waiting[:3]}
            raise AssertionError(f"{len(waiting)} refund(s) with messages not out: {sample}")
        if waiting:
            time.sleep(1)
    # Once more for every refund: a later drill must not have added a message to an old one.
    logs = _notify_logs(workload, list(workload.refunds))
    told_else = {
        r.id: (r.kind, sorted(extra))
        for r in workload.refunds.values()
        if (extra := _unexpected(r, logs[r.id]))
    }
    assert not told_else, f"steps their kind never takes: {list(told_else.items())[:3]}"
    log = [e for entries in logs.values() for e in entries]
    keys = Counter((e["refund_id"], _key(e), e["channel"]) for e in log)
    assert all(n == 1 for n in keys.values()), f"twice in the log: {keys.most_common(2)}"
    counts.messages = Counter(f"{e['channel']}:{e['status']}" for e in log)
    bad = {k: n for k, n in counts.messages.items() if k.split(":")[1] not in ("sent", "uncertain")}
    assert not bad, f"messages that did not go out: {bad}"
    assert counts.messages["in_app:uncertain"] == counts.messages["sms:uncertain"] == 0

    mail = Counter(str(m["Message-ID"]) for m in read_mailbox(data_dir / "mail"))
    assert all(n == 1 for n in mail.values()), f"e-mailed twice: {mail.most_common(2)}"
    ours = {f"<{e['id']}@refunds.local>": e["status"] for e in log if e["channel"] == "email"}
    sent = {m for m, status in ours.items() if status == "sent"}
    received = set(mail)
    assert sent <= received, f"{len(sent - received)} e-mail(s) recorded sent never arrived"
    assert received <= set(ours), f"e-mails notify has no record of: {received - set(ours)}"
    assert counts.messages["email:uncertain"] <= uncertain
    counts.emails_received = len(received)

    texts = httpx.get(workload.urls.sms + "/v1/messages", timeout=30).json()["data"]
    per_key = Counter(t["idempotency_key"] for t in texts)
    assert all(n == 1 for n in per_key.values()), f"texted twice: {per_key.most_common(2)}"
    assert len(texts) == counts.messages["sms:sent"]
    counts.texts_received = len(texts)


def _notify_logs(workload: Workload, refund_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    def of(refund_id: str) -> list[dict[str, Any]]:
        response = _client().get(
            workload.urls.notify + "/v1/notifications",
            params={"refund_id": refund_id},
            headers=AUDITOR,
        )
        assert response.status_code == 200, response.text
        return list(response.json()["data"])

    with ThreadPoolExecutor(8) as pool:
        return dict(zip(refund_ids, pool.map(of, refund_ids), strict=True))


def _key(entry: dict[str, Any]) -> str:
    """`rejected`, or `rejected#2` for the step's second occurrence."""
    return occurrence_key(entry["step"], entry["occurrence"])


def _missing(refund: Refund, log: list[dict[str, Any]]) -> list[str]:
    """The (step, channel) messages this refund should have had that are not out yet."""
    out = {(_key(e), e["channel"]) for e in log if e["status"] != "pending"}
    return [
        f"{step}/{channel}"
        for step in sorted(STEPS[refund.kind])
        for channel in CHANNELS
        if (step, channel) not in out
    ]


def _settled(refund: Refund, log: list[dict[str, Any]]) -> bool:
    return not _missing(refund, log) and all(e["status"] != "pending" for e in log)


def _unexpected(refund: Refund, log: list[dict[str, Any]]) -> set[str]:
    """Steps the customer was told of that their kind does not go through (a payout the
    provider closed is a `payout_failed` of any kind, retried by finance)."""
    return {
        _key(e) for e in log if _key(e) not in STEPS[refund.kind] and e["step"] != "payout_failed"
    }


def check_webhooks(
    workload: Workload, endpoint: str, receiver: Receiver, counts: Counts, *, uncertain: int
) -> None:
    """One delivery per decision, payment and return received, and the receiver got each
    webhook-id once, or again only as the logged retry of a failed attempt."""
    wanted_types = {r.id: _webhook_types(r) for r in workload.refunds.values()}
    wanted = sum(len(types) for types in wanted_types.values())
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        deliveries = webhook_deliveries(workload.urls.notify, endpoint)
        if len(deliveries) >= wanted and all(d["state"] != "pending" for d in deliveries):
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(deliveries)} of {wanted} webhook deliveries, or pending")
        time.sleep(1)
    counts.webhooks = Counter(d["state"] for d in deliveries)
    assert len(deliveries) == wanted == counts.webhooks["delivered"] + counts.webhooks["uncertain"]
    per_event = Counter((d["refund_id"], d["event_type"]) for d in deliveries)
    assert all(n == 1 for n in per_event.values()), f"delivered twice: {per_event.most_common(2)}"
    wrong = {
        refund_id: sorted(types)
        for refund_id, types in wanted_types.items()
        if {t for r, t in per_event if r == refund_id} != types
    }
    assert not wrong, f"{len(wrong)} refund(s) without their webhooks: {list(wrong.items())[:3]}"
    counts.webhook_types = Counter(d["event_type"] for d in deliveries)
    assert counts.webhooks["uncertain"] <= uncertain
    posted = Counter(request.headers["webhook-id"] for request in receiver.requests)
    # Each POST is an attempt in the delivery's log, and a webhook-id goes out again only as
    # the retry of an attempt logged as failed (a transport error reading the answer, as
    # Standard Webhooks retries; receivers dedupe on webhook-id): never after a success, nor
    # after an attempt left uncertain, nor twice for one claim.
    resent = {
        d["id"]: d["attempts"]
        for d in deliveries
        if posted[d["id"]] > min(len(d["attempts"]), 1 + _failed(d["attempts"]))
    }
    assert not resent, f"POSTed more often than its attempts allow: {resent}"
    delivered = {d["id"] for d in deliveries if d["state"] == "delivered"}
    assert delivered <= set(posted) <= {d["id"] for d in deliveries}
    counts.webhook_posts = len(posted)


def _failed(attempts: list[dict[str, Any]]) -> int:
    return sum(1 for attempt in attempts if attempt["outcome"] == "failed")


def _webhook_types(refund: Refund) -> set[str]:
    """The subscribed events a refund of this kind publishes, once each."""
    if ENDS[refund.kind] == "rejected":
        return {"review.rejected.v1"}
    paid = {"review.approved.v1", "payout.succeeded.v1"}
    return paid | {"return.received.v1"} if refund.kind in RETURN_KINDS else paid


def check_ledgers(database_url: str, schema_prefix: str, counts: Counts) -> None:
    """`refunds audit verify` finds every service's ledger intact (after the sealers ran)."""
    time.sleep(1.5)  # the sealers run every 0.5 s
    cli = Path(sys.executable).with_name("refunds")
    done = subprocess.run(
        [
            str(cli),
            "audit",
            "verify",
            "--database-url",
            database_url,
            "--schema-prefix",
            schema_prefix,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # "intake  ok     1234 events, 1200 sealed, ..." per service
    lines = [line.split() for line in done.stdout.splitlines() if line[:1].isalpha()]
    counts.ledgers = {words[0]: int(words[4]) for words in lines if words[1] == "ok"}
    assert set(counts.ledgers) == {"intake", "review", "payout", "notify"}, done.stdout
    assert all(sealed > 0 for sealed in counts.ledgers.values()), done.stdout
